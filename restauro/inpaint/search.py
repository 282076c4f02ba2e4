"""Who runs the z-searches of a restoration: now, in batches (:class:`DirectSearch`), or together
with other restorations running at the same time (``restauro.inpaint.batching``).

The engine hands every window of a scan (or of several scans) to one :class:`ZSearch` call as a
list of :class:`~restauro.inpaint.zopt.ZProblem`, each with its own parameters, and gets one
:class:`~restauro.inpaint.zopt.ZOptResult` back per problem. Batching changes how fast the
answers come, never what they are: :meth:`ZOptimizer.optimize_batch` gives every problem the
result it gets alone (to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from restauro.inpaint.models import GANModels
from restauro.inpaint.params import InpaintParams
from restauro.inpaint.zopt import ZOptimizer, ZOptResult, ZProblem
from restauro.progress import Progress, report

DEFAULT_MAX_ROWS = 128  # candidates per batch: memory, not speed, bounds it (~2 MB a row at 64 px)


class ZSearch(Protocol):
    """Runs the z-searches of ``problems`` on ``models``; one result per problem, in order."""

    def __call__(
        self, models: GANModels, problems: list[ZProblem], progress: Progress | None = None
    ) -> list[ZOptResult]: ...


class DirectSearch:
    """Search the problems now, in this thread, as few batches as ``max_rows`` allows.

    A scan with many losses (a 100-megapixel scan can have dozens of windows) is cut into
    batches of at most ``max_rows`` candidates; a problem is never split.
    """

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.max_rows = max_rows

    def __call__(
        self,
        models: GANModels,
        problems: list[ZProblem],
        progress: Progress | None = None,
        on_result: Callable[[int, ZOptResult], None] | None = None,
    ) -> list[ZOptResult]:
        """``on_result(index into problems, result)`` as each problem's search ends."""
        chunks = list(_chunks(problems, self.max_rows))
        steps = max((_params(p).steps for p in problems), default=0)
        results: list[ZOptResult] = []
        for index, chunk in enumerate(chunks):

            def chunk_progress(stage: str, done: int, total: int, offset: int = index) -> None:
                report(progress, stage, offset * steps + done, len(chunks) * steps)

            done = len(results)

            def chunk_result(i: int, result: ZOptResult, offset: int = done) -> None:
                if on_result is not None:
                    on_result(offset + i, result)

            results += run_batch(
                models, chunk, chunk_progress if progress is not None else None, chunk_result
            )
        return results


def run_batch(
    models: GANModels,
    problems: list[ZProblem],
    progress: Progress | None = None,
    on_result: Callable[[int, ZOptResult], None] | None = None,
) -> list[ZOptResult]:
    """One batched z-search of ``problems`` on ``models`` (each problem carries its params;
    one without them is searched with the defaults, as :func:`rows_of` counts it)."""
    optimizer = ZOptimizer(InpaintParams())
    return optimizer.optimize_batch(
        models.generator,
        models.discriminator,
        problems,
        encoder=models.encoder,
        nz=models.config.nz,
        progress=progress,
        on_result=on_result,
    )


def rows_of(problem: ZProblem) -> int:
    """How many candidate rows ``problem`` adds to a batch."""
    return _params(problem).candidates


def _params(problem: ZProblem) -> InpaintParams:
    return problem.params if problem.params is not None else InpaintParams()


def _chunks(problems: list[ZProblem], max_rows: int):
    chunk: list[ZProblem] = []
    rows = 0
    for problem in problems:
        n = rows_of(problem)
        if chunk and rows + n > max_rows:
            yield chunk
            chunk, rows = [], 0
        chunk.append(problem)
        rows += n
    if chunk:
        yield chunk
