"""The restoration page: plain HTML, CSS and JavaScript shipped inside the package.

Nothing to build: ``service/static/`` is package data (pyproject.toml) served as it is. The page
talks to the same public API as every other client (``/v1/...``, with ``X-API-Key`` when keys are
on), so it needs no endpoint of its own and no key to be loaded itself: it holds no data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False, response_class=FileResponse)
def index() -> FileResponse:
    # no-cache: a browser revalidates, so an upgraded server's page is used at once.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
