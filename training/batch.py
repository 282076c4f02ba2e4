"""Restoring files from the command line: one scan, or a whole folder, here or through a service.

``restauro inpaint`` is a thin command over this module. Both of its modes and both of its
engines write the same output folder, so a batch and a single restoration look alike and a batch
can be resumed:

    OUT/restored_1.png ... restored_N.png   best first, full resolution
    OUT/result.json                         RestoreResult.to_dict() + input, input_sha256, mask

A folder ``DIR`` goes to ``OUT/<scan name>/`` per scan plus ``OUT/report.json``. ``result.json``
is written last, so its presence (for the same input bytes) means "done": a rerun skips it.

Engines: :class:`LocalEngine` restores with ``restauro.restore.restore`` on a bundle loaded once;
:class:`RemoteEngine` submits to a running service (``--via URL``), keeps a few jobs in flight and
downloads the candidates and result.json. A file that fails becomes one line and one entry of the
report; the others go on.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restauro.atomic import write_bytes_atomic, write_json_atomic
from restauro.errors import InvalidInput, InvalidParameter, RestauroError
from restauro.images import encode_like
from restauro.jobs import RESULT, candidate_name
from restauro.masks import load_image_and_mask, load_scan
from restauro.request import RestoreRequest

SCAN_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
REPORT = "report.json"


# --- inputs ------------------------------------------------------------------------------------
def read_file(path: Path, what: str) -> bytes:
    """The bytes of an input file, or InvalidInput naming it (never an OSError traceback)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def read_inputs(image: bytes, mask: bytes | None, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode and validate as the API does (``load_image_and_mask``)."""
    return load_image_and_mask(image, mask, max_pixels)


@dataclass
class Item:
    """One scan to restore: where it is, its mask (None: the scan's alpha), where it goes."""

    scan: Path
    mask: Path | None
    out: Path
    name: str = ""
    problem: str | None = None  # known before restoring (a name clash)

    def __post_init__(self) -> None:
        self.name = self.name or self.scan.name


def is_scan(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SCAN_SUFFIXES


def plan_folder(scans: Path, masks: Path | None, out: Path) -> list[Item]:
    """Every scan of ``scans`` (not recursive), its mask by matching name, its output folder.

    A mask matches by file stem, whatever its format (``a.jpg`` <- ``masks/a.png``); without one
    the scan's transparent pixels are the damage. Two scans with one stem would share an output
    folder, so the second is reported instead of overwriting the first.
    """
    if not scans.is_dir():
        raise InvalidInput(f"{scans} is not a folder")
    if masks is not None and not masks.is_dir():
        raise InvalidInput(f"--masks {masks} is not a folder")
    by_stem: dict[str, Path] = {}
    if masks is not None:
        for path in sorted(masks.iterdir()):
            if is_scan(path):
                by_stem.setdefault(path.stem, path)
    items: list[Item] = []
    taken: dict[str, Path] = {}
    for path in sorted(p for p in scans.iterdir() if is_scan(p)):
        item = Item(scan=path, mask=by_stem.get(path.stem), out=out / path.stem)
        if path.stem in taken:
            item.problem = f"same name as {taken[path.stem].name}: rename one of them"
        taken.setdefault(path.stem, path)
        items.append(item)
    if not items:
        suffixes = ", ".join(SCAN_SUFFIXES)
        raise InvalidInput(f"no scans in {scans} (looked for {suffixes})")
    return items


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def finished(item: Item) -> bool:
    """The output exists and was made from these same input bytes (resume skips it)."""
    try:
        done = json.loads((item.out / RESULT).read_text())
        return done.get("input_sha256") == sha256(item.scan.read_bytes())
    except (OSError, ValueError):
        return False


# --- outputs ------------------------------------------------------------------------------------
def write_outputs(
    out: Path, item: Item, image: bytes, result: dict[str, Any], candidates: list[bytes]
) -> None:
    """Candidates (PNG bytes, best first), then result.json last: the folder's "done" mark."""
    out.mkdir(parents=True, exist_ok=True)
    for rank, png in enumerate(candidates, start=1):
        write_bytes_atomic(out / candidate_name(rank), png)
    summary = {
        "input": str(item.scan),
        "input_sha256": sha256(image),
        "mask": str(item.mask) if item.mask is not None else "alpha",
        **result,
    }
    write_json_atomic(out / RESULT, summary)


@dataclass
class Outcome:
    item: Item
    status: str  # restored | skipped | failed
    seconds: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.result or {}
        first = (r.get("candidates") or [{}])[0]
        best = first.get("score", first.get("loss"))  # the ranking key (result.json score_kind)
        return {
            "input": str(self.item.scan),
            "mask": str(self.item.mask) if self.item.mask is not None else "alpha",
            "output": str(self.item.out),
            "status": self.status,
            "target": r.get("target"),
            "candidates": len(r.get("candidates") or []),
            "best_method": first.get("method"),
            "best_score": best,
            "seconds": round(self.seconds, 3),
            **({"error": {"error": self.error, "detail": self.detail}} if self.error else {}),
        }


Done = Callable[[Outcome], None]


# --- engines ------------------------------------------------------------------------------------
class LocalEngine:
    """Restores here, with the bundle loaded once for every file (and not at all when a resumed
    batch has nothing left to restore)."""

    def __init__(
        self,
        registry: Path,
        version: str | None,
        request: RestoreRequest,
        device: str,
        max_pixels: int,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        from restauro.registry import Registry

        self.registry = Registry(registry)
        # The version is pinned now (a promotion mid-batch changes nothing) and checked now: a
        # missing bundle is one error line, not one per scan.
        self.version: str = version or self.registry.current_version() or ""
        if not self.version:
            self.registry.manifest()  # BundleNotFound: the registry has no current bundle
        self.registry.path_of(self.version)  # BundleNotFound: no such version
        self.request = request
        self.device = device
        self.max_pixels = max_pixels
        self.progress = progress
        self._bundle = None

    @property
    def bundle(self):
        if self._bundle is None:
            self._bundle = self.registry.load(self.version)
        return self._bundle

    @property
    def label(self) -> str:
        return f"bundle {self.version}"

    def restore(self, item: Item) -> dict[str, Any]:
        """Restore one scan into ``item.out``; its result.json as written."""
        from restauro.restore import restore

        image = read_file(item.scan, "image")
        mask = read_file(item.mask, "mask") if item.mask is not None else None
        scan = load_scan(image, mask, self.max_pixels)
        result = restore(
            scan.rgb,
            scan.mask,
            self.bundle,
            self.request,
            device=self.device,
            progress=self.progress,
        )
        # like the input: 16-bit stays 16-bit (bit for bit outside the mask), ICC, orientation
        pngs = [encode_like(c, scan.image, scan.mask) for c in result.candidates]
        write_outputs(item.out, item, image, result.to_dict(), pngs)
        return result.to_dict()

    def run(self, items: list[Item], done: Done) -> None:
        for item in items:
            start = time.perf_counter()
            try:
                result = self.restore(item)
            except RestauroError as exc:
                done(
                    Outcome(item, "failed", time.perf_counter() - start, None, exc.code, exc.detail)
                )
            except Exception as exc:  # a bug on one file must not cost the rest of the batch
                detail = f"{type(exc).__name__}: {exc}"
                done(
                    Outcome(
                        item, "failed", time.perf_counter() - start, None, "internal_error", detail
                    )
                )
            else:
                done(Outcome(item, "restored", time.perf_counter() - start, result))


class ServiceError(RestauroError):
    """The service refused a request or failed a job; ``code`` is its error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class ServiceUnreachable(RestauroError):
    code = "service_unreachable"


@dataclass
class _InFlight:
    item: Item
    image: bytes
    job_id: str
    started: float
    next_poll: float = 0.0


@dataclass
class RemoteEngine:
    """Submits every scan to a running Restauro service and collects the results.

    At most ``parallel`` jobs are in flight at once (the service queues the rest anyway, but a
    folder of thousands should not become thousands of uploads at once). The same request
    parameters travel as the API's form fields; the service applies its own bounds.
    """

    url: str
    request: RestoreRequest
    api_key: str | None = None
    parallel: int = 4
    poll_s: float = 0.5
    timeout_s: float = 3600.0
    client: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import httpx

        self.url = self.url.rstrip("/")
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        self.version: str | None = None

    @property
    def label(self) -> str:
        return f"service {self.url}" + (f" (bundle {self.version})" if self.version else "")

    def check(self) -> None:
        """Fail once, clearly, when the service is not there or refuses the key."""
        import httpx

        try:
            response = self.client.get("/v1/models")
        except httpx.HTTPError as exc:
            raise ServiceUnreachable(f"cannot reach {self.url}: {exc}") from None
        self.version = self._json(response).get("version")

    def _json(self, response: Any) -> dict[str, Any]:
        if response.is_success:
            return response.json()
        try:
            body = response.json()
            code, detail = body["error"], body["detail"]
        except (ValueError, KeyError, TypeError):
            code, detail = "http_error", f"HTTP {response.status_code} from {self.url}"
        raise ServiceError(code, f"{detail} (HTTP {response.status_code})")

    def _form(self) -> dict[str, str]:
        r = self.request
        form = {"candidates": str(r.candidates), "steps": str(r.steps), "seed": str(r.seed)}
        if r.target == "general":
            form["general"] = "true"
        elif r.target != "auto":
            form["cluster"] = str(r.target)
        return form

    def submit(self, item: Item) -> _InFlight:
        import httpx

        image = read_file(item.scan, "image")
        files = {"image": (item.scan.name, image, "application/octet-stream")}
        if item.mask is not None:
            files["mask"] = (item.mask.name, read_file(item.mask, "mask"), "image/png")
        try:
            response = self.client.post("/v1/restorations", files=files, data=self._form())
        except httpx.HTTPError as exc:
            raise ServiceUnreachable(f"cannot reach {self.url}: {exc}") from None
        job = self._json(response)
        return _InFlight(item, image, job["id"], time.perf_counter())

    def collect(self, job: _InFlight) -> dict[str, Any] | None:
        """None while the job runs; its result.json once downloaded; ServiceError if it failed."""
        import httpx

        try:
            view = self._json(self.client.get(f"/v1/restorations/{job.job_id}"))
            if view["status"] == "failed":
                error = view.get("error") or {}
                raise ServiceError(error.get("error") or "failed", error.get("detail") or "failed")
            if view["status"] != "succeeded":
                return None
            pngs = [self.client.get(c["url"]) for c in view["candidates"]]
            for png in pngs:
                self._check(png)
            result = self._json(self.client.get(view["links"]["result"]))
        except httpx.HTTPError as exc:
            raise ServiceUnreachable(f"lost {self.url}: {exc}") from None
        write_outputs(job.item.out, job.item, job.image, result, [p.content for p in pngs])
        return result

    def _check(self, response: Any) -> None:
        if not response.is_success:
            self._json(response)

    def run(self, items: list[Item], done: Done) -> None:
        pending = iter(items)
        inflight: list[_InFlight] = []

        def fail(item: Item, start: float, exc: RestauroError) -> None:
            done(Outcome(item, "failed", time.perf_counter() - start, None, exc.code, exc.detail))

        def refill() -> None:
            for item in pending:
                start = time.perf_counter()
                try:
                    inflight.append(self.submit(item))
                except RestauroError as exc:
                    fail(item, start, exc)
                    continue
                if len(inflight) >= self.parallel:
                    return

        refill()
        while inflight:
            time.sleep(self.poll_s)
            for job in list(inflight):
                try:
                    result = self.collect(job)
                    if result is None and time.perf_counter() - job.started > self.timeout_s:
                        raise ServiceError("timeout", f"not done after {self.timeout_s:g} s")
                except RestauroError as exc:
                    inflight.remove(job)
                    fail(job.item, job.started, exc)
                    continue
                if result is not None:
                    inflight.remove(job)
                    done(Outcome(job.item, "restored", time.perf_counter() - job.started, result))
            refill()


# --- the batch ------------------------------------------------------------------------------------
@dataclass
class BatchReport:
    engine: str
    outcomes: list[Outcome]
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        counts = {"restored": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            counts[o.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "machine": f"{platform.node()} ({platform.machine()})",
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
            "files": [o.to_dict() for o in self.outcomes],
        }


def run_batch(
    items: list[Item],
    engine: LocalEngine | RemoteEngine,
    on_outcome: Done,
) -> BatchReport:
    """Skip finished items, restore the rest with ``engine``; every item yields one outcome."""
    start = time.perf_counter()
    outcomes: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        on_outcome(outcome)

    todo = []
    for item in items:
        if item.problem is not None:
            done(Outcome(item, "failed", error="invalid_input", detail=item.problem))
        elif finished(item):
            done(Outcome(item, "skipped", result=_read_result(item)))
        else:
            todo.append(item)
    engine.run(todo, done)
    order = {id(item): n for n, item in enumerate(items)}
    outcomes.sort(key=lambda o: order[id(o.item)])
    return BatchReport(engine.label, outcomes, time.perf_counter() - start)


def _read_result(item: Item) -> dict[str, Any] | None:
    try:
        return json.loads((item.out / RESULT).read_text())
    except (OSError, ValueError):
        return None


def format_table(report: BatchReport) -> Iterator[str]:
    """The summary: one row per scan, then the counts."""
    rows = [("scan", "status", "target", "best", "score", "seconds", "note")]
    for o in report.outcomes:
        d = o.to_dict()
        score = f"{d['best_score']:.4f}" if d["best_score"] is not None else "-"
        note = o.detail or ("already done" if o.status == "skipped" else "")
        seconds = f"{o.seconds:.1f}" if o.status != "skipped" else "-"
        best = d["best_method"] or "-"
        rows.append((o.item.name, o.status, d["target"] or "-", best, score, seconds, note))
    widths = [max(len(str(r[i])) for r in rows) for i in range(6)]
    for n, row in enumerate(rows):
        cells = [str(c).ljust(w) for c, w in zip(row[:6], widths, strict=True)]
        yield "  ".join([*cells, row[6]]).rstrip()
        if n == 0:
            yield "  ".join("-" * w for w in widths)
    c = report.counts
    yield (
        f"{len(report.outcomes)} scans: {c['restored']} restored, {c['skipped']} skipped "
        f"(already done), {c['failed']} failed in {report.seconds:.1f} s ({report.engine})"
    )


def write_report(out: Path, report: BatchReport) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(out / REPORT, report.to_dict())


def check_parallel(value: int) -> int:
    if value < 1:
        raise InvalidParameter(f"--parallel must be >= 1, got {value}")
    return value
