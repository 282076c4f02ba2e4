"""Restoration jobs as files: the contract between the HTTP service and the workers.

A job is a folder ``RESULTS/<id>/``. The API writes the inputs and ``job.json`` once (inside a
staging folder renamed into place, so a half-written job is never visible); the worker writes
``state.json`` as it starts and fails, and ``restored_<n>.png`` then ``result.json`` when done.
``result.json`` is written last, so its presence means the candidates are complete. Images never
travel through the queue: the queue carries the job id only. A job with a ``callback_url`` also
gets ``webhook.json``, the record of its delivery (created once, when the job ends); ``.webhooks/``
beside the job folders marks the deliveries still pending and holds the delivering workers'
heartbeats, so a worker can resume what one that stopped left (worker/webhooks.py, "Takeover").

:meth:`JobStore.view` composes the JSON a client sees for a job from these files: the API answers
``GET /v1/restorations/{id}`` with it and the worker POSTs it to the callback URL.

Both adapters need this layout and must not import each other, so it lives in the core; it imports
no web or queue framework.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from restauro.atomic import write_bytes_atomic, write_json_atomic
from restauro.bundle import GENERAL, target_name
from restauro.errors import NotFound
from restauro.images import (
    DecodedImage,
    decode_image,
    encode_like,
    encode_png,
    image_info,
    read_image,
    write_png,
)
from restauro.request import RestorePlan

if TYPE_CHECKING:
    from restauro.restore import RestoreResult

JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")

INPUT = "input.png"
MASK = "mask.png"
JOB = "job.json"
STATE = "state.json"
RESULT = "result.json"
WEBHOOK = "webhook.json"
# Beside the job folders (ids() skips dot names): one marker per delivery still pending, so a
# worker looking for deliveries to resume lists those instead of every job, and one heartbeat
# file per live deliverer (its mtime), so a worker that is only slow is never taken over.
WEBHOOKS_DIR = ".webhooks"
OWNER_PATTERN = re.compile(r"[^A-Za-z0-9._-]")

TERMINAL = ("succeeded", "failed")  # a job in one of these never changes again


class JobNotFound(NotFound):
    code = "job_not_found"


# The wire contract between the API (producer) and the workers (consumers): the task's name and
# one queue per restoration target. Both adapters read it from here, never from each other.
TASK_NAME = "restauro.restore"


def queue_for(target: str) -> str:
    """The queue of a restoration target, named as bundles name them: ``"c3"`` or ``"general"``."""
    return f"restore.{target}"


def cluster_queue(cluster: int) -> str:
    return queue_for(target_name(cluster))


GENERAL_QUEUE = queue_for(GENERAL)


def new_job_id() -> str:
    return uuid.uuid4().hex


def candidate_name(n: int) -> str:
    return f"restored_{n}.png"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _source(folder: Path) -> tuple[DecodedImage, np.ndarray] | None:
    """A job's input and mask when the candidates must be written like it (not plain 8-bit)."""
    data = (folder / INPUT).read_bytes()
    limit = 2**62  # the API checked the limit when the job was submitted
    if image_info(data, limit, INPUT).plain:
        return None
    mask = read_image(folder / MASK, max_pixels=limit).rgb[..., 0] > 0
    return decode_image(data, limit, INPUT), mask


def job_status(result: dict[str, Any] | None, state: dict[str, Any] | None) -> str:
    """A job's status from its result.json and state.json (either may be missing).

    ``result.json`` is written last, so its presence alone means succeeded.
    """
    if result is not None:
        return "succeeded"
    return (state or {}).get("status", "queued")


def job_links(job_id: str, candidates: int = 0, result: bool = False) -> dict[str, Any]:
    """Where a job's files are served, relative to the API's base URL."""
    base = f"/v1/restorations/{job_id}"
    links: dict[str, Any] = {
        "self": base,
        "original": f"{base}/original",
        "mask": f"{base}/mask",
        "candidates": [f"{base}/candidates/{n}" for n in range(1, candidates + 1)],
    }
    if result:
        links["result"] = f"{base}/result.json"
    return links


def webhook_view(url: str | None, record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The delivery part of a job's view: None without a callback URL; "waiting" until the job
    ends, then pending / retrying / delivered / failed with the attempts and the last error."""
    if url is None:
        return None
    record = record or {}
    return {
        "url": url,
        "status": record.get("status", "waiting"),
        "delivered": record.get("status") == "delivered",
        "attempts": record.get("attempts", 0),
        "last_error": record.get("last_error"),
        "last_status_code": record.get("last_status_code"),
        "delivered_at": record.get("delivered_at"),
        "next_attempt_at": record.get("next_attempt_at"),
    }


class JobStore:
    """Job folders under one root. Every id is validated before it becomes a path."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, job_id: str) -> Path:
        """The folder of a job; ids that are not 32 hex digits never reach the file system."""
        if not isinstance(job_id, str) or not JOB_ID_PATTERN.fullmatch(job_id):
            raise JobNotFound(f"no restoration job {job_id!r}")
        return self.root / job_id

    def existing(self, job_id: str) -> Path:
        folder = self.path(job_id)
        if not (folder / JOB).is_file():
            raise JobNotFound(f"no restoration job {job_id!r}")
        return folder

    def exists(self, job_id: str) -> bool:
        try:
            self.existing(job_id)
        except JobNotFound:
            return False
        return True

    # --- written by the API -------------------------------------------------------------------
    def create(
        self,
        job_id: str,
        rgb: np.ndarray,
        mask: np.ndarray,
        plan: RestorePlan,
        created: float,
        source: DecodedImage | None = None,
    ) -> dict[str, Any]:
        """Store the inputs and the job description; the folder appears complete or not at all.

        ``source`` (the decoded upload of ``rgb``) keeps the scan's depth, ICC profile and
        orientation in ``input.png``, so the candidates are written back like the upload.
        Returns the job description (``job.json``): the plan, the image's size and when.
        """
        job = {
            "id": job_id,
            "created": created,
            **plan.to_dict(),
            "image": {"width": int(rgb.shape[1]), "height": int(rgb.shape[0])},
            "mask_pixels": int(mask.sum()),
        }
        final = self.path(job_id)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".staging-{job_id}-"))
        try:
            if source is None or source.info.plain:
                write_png(staging / INPUT, rgb)
            else:
                pixels = source.deep if source.deep is not None else source.rgb
                (staging / INPUT).write_bytes(encode_png(pixels, source.info))
            write_png(staging / MASK, mask.astype(np.uint8) * 255)
            write_json_atomic(staging / JOB, job, sort_keys=True)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return job

    def delete(self, job_id: str) -> None:
        folder = self.existing(job_id)
        # Rename first so a worker finishing right now cannot see a half-deleted folder as a job.
        trash = self.root / f".deleted-{job_id}-{uuid.uuid4().hex[:8]}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # --- read by both ---------------------------------------------------------------------------
    def read_job(self, job_id: str) -> dict[str, Any]:
        job = _read_json(self.existing(job_id) / JOB)
        if job is None:
            raise JobNotFound(f"no restoration job {job_id!r}")
        return job

    def read_plan(self, job_id: str) -> RestorePlan:
        """The plan the API made for this job, for the worker to follow."""
        return RestorePlan.from_dict(self.read_job(job_id))

    def status(self, job_id: str) -> str:
        """queued | running | succeeded | failed, from the files alone."""
        return job_status(self.read_result(job_id), self.read_state(job_id))

    def read_state(self, job_id: str) -> dict[str, Any] | None:
        return _read_json(self.path(job_id) / STATE)

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        return _read_json(self.path(job_id) / RESULT)

    def view(
        self, job_id: str, progress: Callable[[str], dict[str, Any] | None] | None = None
    ) -> dict[str, Any]:
        """The job as clients see it: ``GET /v1/restorations/{id}`` and the webhook's body.

        Status, plan, candidate records and download links from the files; ``progress`` (the
        API's result backend) is asked only while the job runs.
        """
        job = self.read_job(job_id)
        result = self.read_result(job_id)
        state = self.read_state(job_id) or {}
        status = job_status(result, state)
        view: dict[str, Any] = {
            "id": job_id,
            "status": status,
            "created": job["created"],
            "bundle_version": job["bundle_version"],
            "target": job["target"],
            "cluster": job["cluster"],
            "queue": job["queue"],
            "route": job.get("route"),
            "params": job["params"],
            "image": job.get("image"),
        }
        if status == "running":
            view["attempt"] = state.get("attempt")
            view["progress"] = progress(job_id) if progress is not None else None
        if status == "failed":
            view["error"] = {"error": state.get("error"), "detail": state.get("detail")}
        n = 0
        if result is not None:
            n = len(result["candidates"])
            base = f"/v1/restorations/{job_id}/candidates"
            view["bundle_version"] = result["bundle_version"]
            # The result's own candidate records (restauro.restore.RestoreResult.to_dict), plus
            # where to download each; "n" is the index in that URL (= rank, 1 = best).
            view["candidates"] = [
                {**c, "n": c["rank"], "url": f"{base}/{c['rank']}"} for c in result["candidates"]
            ]
            view["score_kind"] = result.get("score_kind")  # what ranks them (result.json's words)
            view["warnings"] = result.get("warnings", [])
            view["timings"] = {
                "restoration_seconds": result.get("seconds"),
                "queued_seconds": round(result["started"] - job["created"], 3),
                "total_seconds": round(result["finished"] - job["created"], 3),
            }
            view["attempt"] = result.get("attempt")
        url = job.get("callback_url")
        if url is not None:
            view["webhook"] = webhook_view(url, self.read_webhook(job_id))
        view["links"] = job_links(job_id, n, result=result is not None)
        return view

    def read_webhook(self, job_id: str) -> dict[str, Any] | None:
        return _read_json(self.path(job_id) / WEBHOOK)

    def read_inputs(self, job_id: str, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
        folder = self.existing(job_id)
        rgb = read_image(folder / INPUT, max_pixels=max_pixels).rgb
        mask = read_image(folder / MASK, max_pixels=max_pixels).rgb[..., 0] > 0
        return rgb, mask

    def file(self, job_id: str, name: str) -> Path:
        """A file of an existing job, or JobNotFound / FileNotFoundError."""
        path = self.existing(job_id) / name
        if not path.is_file():
            raise FileNotFoundError(name)
        return path

    def ids(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for entry in os.scandir(self.root):
            if entry.is_dir() and JOB_ID_PATTERN.fullmatch(entry.name):
                yield entry.name

    # --- written by the worker --------------------------------------------------------------------
    def claim_webhook(self, job_id: str, record: dict[str, Any]) -> bool:
        """Create ``webhook.json`` unless it exists: the one delivery of this job's end.

        Exclusive creation makes "once per job" hold across processes and redeliveries: a job
        redelivered after it ended, or reported by two signals, finds the claim taken.
        """
        folder = self.path(job_id)
        if not (folder / JOB).is_file():
            return False
        # Written aside, then hard-linked into place: link() fails if the name exists, and a
        # reader never sees a half-written record.
        tmp = folder / f".{WEBHOOK}.{uuid.uuid4().hex[:8]}.claim"
        try:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
            os.link(tmp, folder / WEBHOOK)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def take_over_webhook(
        self, job_id: str, seen: dict[str, Any], record: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Replace the pending record ``seen`` by ``record`` unless another worker did first;
        the record written (``record`` with the next ``takeovers``), or None.

        The compare-and-swap of the takeover: each generation of a record (its ``takeovers``
        count) has one lock file, created exclusively, so of the workers that read the same stale
        record one wins and the others find the lock taken. The winner then checks the record is
        still the one it read (not finished by its owner meanwhile) and writes ``record`` with the
        next generation. A won lock stays (a late reader of that generation finds it taken; it
        goes with the job's folder); one released when the record had moved on.
        """
        folder = self.path(job_id)
        generation = int(seen.get("takeovers", 0))
        lock = folder / f".{WEBHOOK}.takeover-{generation}"
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except (FileExistsError, FileNotFoundError):  # taken, or the job was deleted
            return None
        current = self.read_webhook(job_id)
        moved = ("status", "attempts", "takeovers")  # its owner went on after all: leave it
        if current is None or any(current.get(k) != seen.get(k) for k in moved):
            lock.unlink(missing_ok=True)  # not taken: a later takeover of this generation may be
            return None
        written = {**record, "takeovers": generation + 1}
        return written if self.write_webhook(job_id, written) else None

    def webhook_written_at(self, job_id: str) -> float | None:
        """When ``webhook.json`` was last written (its owner rewrites it every attempt)."""
        try:
            return (self.path(job_id) / WEBHOOK).stat().st_mtime
        except FileNotFoundError:
            return None

    def _webhooks(self, kind: str) -> Path:
        return self.root / WEBHOOKS_DIR / kind

    def note_webhook_pending(self, job_id: str) -> None:
        """Mark a delivery as pending before it is claimed: what :meth:`pending_webhooks` lists.

        Marked first, so a worker dying right after its claim leaves the mark; a mark whose
        delivery ended (or whose claim another worker won) is cleared by whoever sees it.
        """
        folder = self._webhooks("pending")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / self.path(job_id).name).touch()

    def webhook_settled(self, job_id: str) -> None:
        """The delivery is final (delivered, failed) or its job is gone: drop its mark."""
        (self._webhooks("pending") / self.path(job_id).name).unlink(missing_ok=True)

    def pending_webhooks(self) -> list[str]:
        """Job ids whose delivery was marked pending and not yet settled."""
        folder = self._webhooks("pending")
        if not folder.is_dir():
            return []
        return sorted(e.name for e in os.scandir(folder) if JOB_ID_PATTERN.fullmatch(e.name))

    def beat(self, owner: str) -> None:
        """A deliverer's heartbeat: its file's mtime says it is alive (see ``last_beat``)."""
        folder = self._webhooks("owners")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OWNER_PATTERN.sub("_", owner)).touch()  # an existing file: its mtime is now

    def last_beat(self, owner: str | None) -> float | None:
        """When the deliverer ``owner`` last beat; None if never (or no owner named)."""
        if not owner:
            return None
        try:
            return (self._webhooks("owners") / OWNER_PATTERN.sub("_", owner)).stat().st_mtime
        except FileNotFoundError:
            return None

    def forget_owners(self, older_than_s: float, now: float) -> None:
        """Remove heartbeats not renewed for ``older_than_s``: each worker start leaves one."""
        folder = self._webhooks("owners")
        if not folder.is_dir():
            return
        for entry in os.scandir(folder):
            with contextlib.suppress(FileNotFoundError):  # another worker removed it first
                if now - entry.stat().st_mtime > older_than_s:
                    os.unlink(entry.path)

    def write_webhook(self, job_id: str, record: dict[str, Any]) -> bool:
        """Update the delivery record; False when the job was deleted meanwhile."""
        return self._write_json(job_id, WEBHOOK, record)

    def write_state(self, job_id: str, state: dict[str, Any]) -> bool:
        """Record the worker's view; False when the job was deleted meanwhile."""
        return self._write_json(job_id, STATE, state)

    def _write_json(self, job_id: str, name: str, data: dict[str, Any]) -> bool:
        folder = self.path(job_id)
        if not (folder / JOB).is_file():
            return False
        # No mkdir (unlike write_png): a job deleted meanwhile must stay deleted.
        write_json_atomic(folder / name, data, sort_keys=True, mkdir=False)
        return True

    def write_result(self, job_id: str, result: RestoreResult, **extra: Any) -> bool:
        """Candidates first, result.json last: a reader that sees the result sees every image.

        result.json is ``result.to_dict()`` (the CLI's result.json too) plus the job's id, status
        and ``extra`` (timings, attempt, worker). Rerunning a job overwrites the same names with
        the same content (the seed is in job.json). False when the job was deleted meanwhile.
        """
        folder = self.path(job_id)
        if not (folder / JOB).is_file():
            return False
        source = _source(folder)
        for n, image in enumerate(result.candidates, start=1):  # rank 1 = best, as in the CLI
            # Like the upload (16 bits, ICC profile, orientation), outside the mask bit for bit.
            data = encode_png(image) if source is None else encode_like(image, *source)
            # No mkdir here (unlike write_png): a job deleted meanwhile must stay deleted.
            write_bytes_atomic(folder / candidate_name(n), data, mkdir=False)
        body = {"id": job_id, "status": "succeeded", **result.to_dict(), **extra}
        write_json_atomic(folder / RESULT, body, sort_keys=True, mkdir=False)
        return True
