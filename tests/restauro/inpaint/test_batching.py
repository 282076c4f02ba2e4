"""Cross-request batching: concurrent restorations share batches and get their own results."""

from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest

from restauro.inpaint import InpaintParams, inpaint
from restauro.inpaint.batching import CrossRequestBatcher
from tests.restauro.inpaint.conftest import synthetic_paintings

HANG = 300  # seconds: only a batcher that never answers gets anywhere near it


def _jobs():
    """Three different scans, holes and requests (candidates, steps, seed all differ)."""
    scans = synthetic_paintings(3, size=80, seed=5)
    out = []
    for i, scan in enumerate(scans):
        mask = np.zeros(scan.shape[:2], dtype=bool)
        mask[20 + 5 * i : 44 + 5 * i, 18 : 40 + 3 * i] = True
        if i == 1:
            mask[4:10, 66:76] = True  # a second hole
        params = InpaintParams(candidates=2 + i, steps=10 + 5 * i, seed=10 + i, keep=0)
        out.append((scan, mask, params))
    return out


def _concurrently(batcher, models_of, jobs, progress_of=None):
    """Run every job in its own thread, all inside the batcher, as a threaded worker does."""
    results: list = [None] * len(jobs)
    errors: list = [None] * len(jobs)
    entered = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        scan, mask, params = jobs[i]
        with batcher.participant():
            entered.wait()  # all are in flight before any search starts
            try:
                results[i] = inpaint(
                    scan,
                    mask,
                    models_of(i),
                    params,
                    progress=progress_of(i) if progress_of else None,
                    search=batcher,
                )
            except Exception as exc:
                errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    assert not any(t.is_alive() for t in threads), "the batcher never answered"
    return results, errors


def test_concurrent_restorations_share_one_batch_and_get_what_they_get_alone(tiny_models):
    jobs = _jobs()
    alone = [inpaint(scan, mask, tiny_models, params) for scan, mask, params in jobs]
    # A gathering window far longer than the test: the batch must close because every
    # restoration in flight reached its search, not because time ran out.
    batcher = CrossRequestBatcher(gather_s=HANG)
    together, errors = _concurrently(batcher, lambda i: tiny_models, jobs)
    assert errors == [None, None, None]
    assert batcher.stats.batches == 1 and batcher.stats.largest == 3
    assert batcher.stats.rows == sum(len(r.candidates) * len(r.groups) for r in together)
    for (scan, mask, _), a, b in zip(jobs, alone, together, strict=True):
        assert len(a.candidates) == len(b.candidates)
        for x, y in zip(a.candidates, b.candidates, strict=True):
            assert np.array_equal(x[~mask], scan[~mask]) and np.array_equal(y[~mask], scan[~mask])
            # equal up to float rounding in a batched matrix product (at most one grey level)
            assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
        assert np.allclose([c.total for c in a.losses], [c.total for c in b.losses], rtol=1e-4)
        assert a.steps == b.steps


def test_a_lone_restoration_does_not_wait_for_the_gathering_window(tiny_models):
    scan, mask, params = _jobs()[0]
    batcher = CrossRequestBatcher(gather_s=10 * HANG)
    results, errors = _concurrently(batcher, lambda i: tiny_models, [(scan, mask, params)])
    assert errors == [None] and results[0] is not None
    assert batcher.stats.batches == 1


def test_other_generators_are_batched_apart(tiny_models):
    other = copy.deepcopy(tiny_models)  # another cluster's networks: never in the same batch
    jobs = _jobs()[:2]
    batcher = CrossRequestBatcher(gather_s=HANG)
    results, errors = _concurrently(batcher, lambda i: tiny_models if i == 0 else other, jobs)
    assert errors == [None, None] and all(r is not None for r in results)
    assert batcher.stats.batches == 2 and batcher.stats.largest == 1


def test_a_job_stopped_by_its_progress_does_not_stop_the_others(tiny_models):
    class Stop(Exception):
        pass

    def progress_of(i):
        def progress(stage: str, done: int, total: int) -> None:
            if i == 1 and stage == "inpaint" and done >= 3:
                raise Stop("job 1 was cancelled")

        return progress

    jobs = _jobs()
    batcher = CrossRequestBatcher(gather_s=HANG)
    results, errors = _concurrently(batcher, lambda i: tiny_models, jobs, progress_of)
    assert isinstance(errors[1], Stop) and results[1] is None
    assert errors[0] is None and errors[2] is None
    assert results[0] is not None and results[2] is not None


def test_gathering_window_must_not_be_negative():
    with pytest.raises(ValueError):
        CrossRequestBatcher(gather_s=-1)


def test_a_stopped_job_leaves_the_batch_at_once_and_each_knows_its_batches(tiny_models):
    """The stopped job's rows leave at the next step: a batch of it alone ends there instead of
    running all its steps for nobody. Every participation says how many requests it met."""

    class Stop(Exception):
        pass

    seen: list[tuple[int, int]] = []
    long_job = [(*_jobs()[0][:2], InpaintParams(candidates=2, steps=100_000, seed=1, keep=0))]

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "inpaint" and done >= 2:
            raise Stop("stopped")

    batcher = CrossRequestBatcher(gather_s=HANG, on_batch=lambda m, n, rows: seen.append((n, rows)))
    joined = []

    def run() -> None:
        with batcher.participant() as mine:
            joined.append(mine)
            scan, mask, params = long_job[0]
            with pytest.raises(Stop):
                inpaint(scan, mask, tiny_models, params, progress=progress, search=batcher)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(HANG)
    assert not thread.is_alive(), "the stopped job was not answered"
    # the batch itself (its own thread) ends at the next step, not after 100,000
    assert _eventually(lambda: len(seen) == 1), "the stopped job's batch went on"
    assert seen == [(1, 2)] and joined[0].to_dict() == {"batches": 1, "batched_requests": 1}

    together = []
    _, errors = _concurrently(_Recording(batcher, together), lambda i: tiny_models, _jobs()[:2])
    assert errors == [None, None] and _eventually(lambda: len(seen) == 2) and seen[-1][0] == 2
    assert [p.to_dict() for p in together] == [{"batches": 1, "batched_requests": 2}] * 2


def _eventually(condition, timeout: float = HANG) -> bool:
    """Poll ``condition`` (a hang detector, not a timing: the deadline is minutes away)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class _Recording:
    """The batcher, keeping the Participation of every restoration that enters it."""

    def __init__(self, batcher: CrossRequestBatcher, out: list) -> None:
        self.batcher, self.out = batcher, out

    def participant(self):
        import contextlib

        @contextlib.contextmanager
        def joined():
            with self.batcher.participant() as mine:
                self.out.append(mine)
                yield mine

        return joined()

    def __call__(self, *args, **kwargs):
        return self.batcher(*args, **kwargs)


def test_a_short_search_is_answered_before_a_long_one_in_its_batch_ends(tiny_models):
    """A 5-step job batched with a 3,000-step one gets its answer while the long one still runs
    (it must not wait for it, nor be held by its own time limit meanwhile)."""
    scan, mask, _ = _jobs()[0]
    jobs = [
        (scan, mask, InpaintParams(candidates=2, steps=3000, seed=1, keep=0)),
        (scan, mask, InpaintParams(candidates=2, steps=5, seed=2, keep=0)),
    ]
    short_done = threading.Event()
    seen_while_running: list[bool] = []

    def progress_of(i):
        def progress(stage: str, done: int, total: int) -> None:
            if i == 0 and stage == "inpaint" and done < total:
                seen_while_running.append(short_done.is_set())

        return progress

    batcher = CrossRequestBatcher(gather_s=HANG)
    results: list = [None, None]
    entered = threading.Barrier(2)

    def run(i: int) -> None:
        scan_i, mask_i, params = jobs[i]
        with batcher.participant():
            entered.wait()
            results[i] = inpaint(
                scan_i, mask_i, tiny_models, params, progress=progress_of(i), search=batcher
            )
        if i == 1:
            short_done.set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    assert not any(t.is_alive() for t in threads)
    assert batcher.stats.batches == 1 and batcher.stats.largest == 2
    assert results[0].steps == 3000 and results[1].steps == 5
    assert any(seen_while_running), "the short job waited for the long one"
