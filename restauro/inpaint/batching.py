"""Cross-request batching: the z-searches of restorations running at the same time share batches.

A GPU worker restores several jobs at once (threads of one process, one GPU). Each restoration
is ordinary sequential code that reaches its z-search and calls the worker's
:class:`CrossRequestBatcher` as its :class:`~restauro.inpaint.search.ZSearch`. The batcher holds
the call briefly, gathers the problems of every other restoration that reaches its own search on
the same generator, runs them in one :meth:`ZOptimizer.optimize_batch`, and hands each caller its
own results, which equal what it would have got alone (each problem keeps its parameters and
seed; see ``optimize_batch``).

How long it waits: not at all when every restoration in flight (those inside
:meth:`CrossRequestBatcher.participant`) is already waiting, so a lone job is never delayed;
otherwise up to ``gather_s`` for the others to arrive, or until ``max_rows`` candidates are
waiting. The caller whose wait ends first starts the batch in a thread of its own; every
caller sleeps until its own searches in it have ended (a short search is answered before a
long one it shares the batch with ends). An error in the batch reaches every caller still
waiting in it.

A caller stopped by its own progress (a time limit) gets its error; its rows leave the batch at
the next step, the others' go on. Each restoration's :class:`Participation` (yielded by
:meth:`~CrossRequestBatcher.participant`) says how many requests its batches held, for its
result; ``on_batch`` hears of every batch (a worker logs it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from restauro.inpaint.models import GANModels
from restauro.inpaint.search import DEFAULT_MAX_ROWS, DirectSearch, rows_of
from restauro.inpaint.zopt import ZOptResult, ZProblem
from restauro.progress import Progress, report


@dataclass
class Participation:
    """What the batcher did for one restoration (small and honest enough for its result.json)."""

    batches: int = 0  # batches its z-searches ran in
    largest: int = 0  # most requests in one of them, its own included (1: it ran alone)

    def to_dict(self) -> dict[str, int]:
        return {"batches": self.batches, "batched_requests": self.largest}


@dataclass
class _Request:
    """One caller's problems, waiting for a batch, and where its answer goes."""

    models: GANModels
    problems: list[ZProblem]
    progress: Progress | None
    joined: Participation | None = None  # the caller's restoration, when inside participant()
    done: threading.Event = field(default_factory=threading.Event)
    results: list[ZOptResult] | None = None
    error: BaseException | None = None
    taken: bool = False  # taken into a batch

    @property
    def rows(self) -> int:
        return sum(rows_of(p) for p in self.problems)


@dataclass
class BatchStats:
    """What the batcher did, for logs and benchmarks."""

    batches: int = 0
    requests: int = 0
    rows: int = 0
    largest: int = 0  # most requests in one batch


class CrossRequestBatcher:
    """A :class:`ZSearch` that merges concurrent callers' searches on the same generator."""

    def __init__(
        self,
        gather_s: float = 0.05,
        max_rows: int = 4 * DEFAULT_MAX_ROWS,
        on_batch: Callable[[GANModels, int, int], None] | None = None,
    ) -> None:
        """``on_batch(models, requests, rows)`` is called once each batch ran."""
        if gather_s < 0:
            raise ValueError(f"gather_s must be >= 0, got {gather_s}")
        self.gather_s = gather_s
        self.on_batch = on_batch
        self._local = threading.local()  # the Participation of the restoration in this thread
        self.search = DirectSearch(max_rows)
        self.max_rows = max_rows
        self._lock = threading.Condition()
        self._waiting: list[_Request] = []
        self._active = 0  # restorations in flight (participants)
        self._serving = 0  # requests taken into a batch that has not answered yet
        self.stats = BatchStats()

    @contextlib.contextmanager
    def participant(self) -> Iterator[Participation]:
        """Around one restoration: while it runs, searches that arrive wait for it (briefly).

        Its searches must run in this thread (the engine's do), so that they count for it.
        """
        joined = Participation()
        self._local.joined = joined
        with self._lock:
            self._active += 1
        try:
            yield joined
        finally:
            self._local.joined = None
            with self._lock:
                self._active -= 1
                self._lock.notify_all()  # one fewer to wait for

    def __call__(
        self, models: GANModels, problems: list[ZProblem], progress: Progress | None = None
    ) -> list[ZOptResult]:
        if not problems:
            return []
        mine = _Request(models, problems, progress, getattr(self._local, "joined", None))
        deadline = time.monotonic() + self.gather_s
        with self._lock:
            self._waiting.append(mine)
            self._lock.notify_all()
            while not mine.taken and not self._ready(mine, deadline):
                self._lock.wait(timeout=max(0.0, deadline - time.monotonic()))
            batch = [] if mine.taken else self._take(models)
        if batch:
            # The batch runs in a thread of its own, not the leader's: the leader's job, like
            # every other, goes on as soon as its own searches end.
            threading.Thread(
                target=self._run_delivering,
                args=(models, batch),
                name="restauro-zsearch",
                daemon=True,  # a process that exits mid-batch: its jobs come back from the queue
            ).start()
        mine.done.wait()
        if mine.error is not None:
            raise mine.error
        assert mine.results is not None
        return mine.results

    def _ready(self, mine: _Request, deadline: float) -> bool:
        """Whether ``mine`` should lead a batch now (called with the lock held)."""
        same = [r for r in self._waiting if r.models is mine.models]
        if time.monotonic() >= deadline or sum(r.rows for r in same) >= self.max_rows:
            return True
        # nobody else can arrive: every restoration in flight is waiting here or being served
        return len(self._waiting) + self._serving >= max(self._active, 1)

    def _take(self, models: GANModels) -> list[_Request]:
        """The waiting requests on ``models`` that fit in one batch, in arrival order."""
        batch, rows = [], 0
        for request in self._waiting:
            if request.models is not models:
                continue
            if batch and rows + request.rows > self.max_rows:
                break
            batch.append(request)
            rows += request.rows
        for request in batch:
            request.taken = True
            self._waiting.remove(request)
        self._serving += len(batch)
        if batch:  # counted when it starts: its callers may be answered before it ends
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.rows += rows
            self.stats.largest = max(self.stats.largest, len(batch))
        return batch

    def _run_delivering(self, models: GANModels, batch: list[_Request]) -> None:
        """The batch thread: any error was handed to every caller waiting for it; stop here."""
        with contextlib.suppress(BaseException):
            self._run(models, batch)

    def _run(self, models: GANModels, batch: list[_Request]) -> None:
        """Search ``batch``; answer each request as its searches end.

        A request is answered the moment its last problem's search ends (a 200-step job batched
        with a 5,000-step one does not wait for it), or the moment its caller's progress raises.
        """
        problems = [_cancellable(p, request) for request in batch for p in request.problems]
        owner = [(request, i) for request in batch for i in range(len(request.problems))]
        found: dict[int, list[ZOptResult | None]] = {
            id(request): [None] * len(request.problems) for request in batch
        }

        def fan_out(stage: str, done: int, total: int) -> None:
            # A caller's progress may raise to stop its job (a time limit, a deleted job): that
            # stops its answer, not the batch the others share.
            for request in batch:
                if request.error is None and not request.done.is_set():
                    try:
                        report(request.progress, stage, done, total)
                    except Exception as exc:
                        request.error = exc
                        self._answer(request, len(batch))

        def on_result(index: int, result: ZOptResult) -> None:
            request, i = owner[index]
            slots = found[id(request)]
            slots[i] = result
            if request.error is None and all(r is not None for r in slots):
                request.results = [r for r in slots if r is not None]
                self._answer(request, len(batch))

        try:
            self.search(models, problems, fan_out, on_result=on_result)
        except BaseException as exc:  # every caller still waiting in this batch sees the error
            for request in batch:
                if not request.done.is_set():
                    request.error = request.error or exc
                    self._answer(request, len(batch))
            raise
        finally:
            self._batch_ran(batch)
        for request in batch:  # answered already, unless its search could not end (none here)
            if not request.done.is_set():
                request.error = request.error or RuntimeError("the batch ended without its result")
                self._answer(request, len(batch))

    def _answer(self, request: _Request, batch_size: int) -> None:
        """Wake ``request``'s caller (results or error are set): it is no longer served."""
        with self._lock:
            if request.done.is_set():
                return
            self._serving -= 1
            if request.joined is not None:
                request.joined.batches += 1
                request.joined.largest = max(request.joined.largest, batch_size)
            request.done.set()
            self._lock.notify_all()  # a caller served is a caller that may come back

    def _batch_ran(self, batch: list[_Request]) -> None:
        rows = sum(r.rows for r in batch)
        if self.on_batch is not None:
            with contextlib.suppress(Exception):  # a report must not fail the batch it reports
                self.on_batch(batch[0].models, len(batch), rows)


def _cancellable(problem: ZProblem, request: _Request) -> ZProblem:
    """``problem``, leaving the batch once its caller has an error (nobody wants its answer)."""
    own = problem.cancelled

    def cancelled() -> bool:
        return request.error is not None or (own is not None and own())

    return dataclasses.replace(problem, cancelled=cancelled)
