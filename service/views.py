"""The JSON a client sees for a job, composed from the job files (and progress from the backend)."""

from __future__ import annotations

from typing import Any

from restauro.jobs import JobStore, job_status
from service.queue import JobQueue

TERMINAL = ("succeeded", "failed")


def job_links(job_id: str, candidates: int = 0) -> dict[str, Any]:
    base = f"/v1/restorations/{job_id}"
    return {
        "self": base,
        "original": f"{base}/original",
        "mask": f"{base}/mask",
        "candidates": [f"{base}/candidates/{n}" for n in range(1, candidates + 1)],
    }


def job_view(store: JobStore, queue: JobQueue | None, job_id: str) -> dict[str, Any]:
    job = store.read_job(job_id)
    result = store.read_result(job_id)
    state = store.read_state(job_id) or {}
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
        view["progress"] = queue.progress(job_id) if queue is not None else None
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
        view["warnings"] = result.get("warnings", [])
        view["timings"] = {
            "restoration_seconds": result.get("seconds"),
            "queued_seconds": round(result["started"] - job["created"], 3),
            "total_seconds": round(result["finished"] - job["created"], 3),
        }
        view["attempt"] = result.get("attempt")
    view["links"] = job_links(job_id, n)
    return view
