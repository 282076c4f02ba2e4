"""HTTP errors, mapped once: every RestauroError becomes ``{"error": code, "detail": message}``.

The core raises typed errors and knows nothing of HTTP; this module is the one place that decides
their status codes. A user's mistake is always a 4xx; only a bug in our code yields a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from restauro import errors as core

log = logging.getLogger("restauro.service")


class ServiceUnavailable(core.RestauroError):
    """The broker or the model bundle is not there; the request may succeed later."""

    code = "service_unavailable"


class NoActiveBundle(ServiceUnavailable):
    code = "no_active_bundle"


class UnsupportedMediaType(core.RestauroError):
    code = "unsupported_media_type"


class UploadTooLarge(core.ImageTooLarge):
    code = "upload_too_large"


class NotReady(core.RestauroError):
    """The job exists but has no such output yet."""

    code = "not_ready"


class Unauthorized(core.RestauroError):
    code = "unauthorized"


# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: list[tuple[type[core.RestauroError], int]] = [
    (Unauthorized, 401),
    (ServiceUnavailable, 503),
    (UnsupportedMediaType, 415),
    (core.ImageTooLarge, 413),
    (NotReady, 409),
    (core.BundleExists, 409),
    (core.UnknownCluster, 422),
    (core.NotFound, 404),
    (core.InvalidImage, 400),
    (core.InvalidInput, 422),
    (core.WeightsUnavailable, 503),
    (core.BundleCorrupt, 503),
]


def status_for(exc: core.RestauroError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(error_body(code, detail), status_code=status)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}


# The one error body, as the OpenAPI schema documents it.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. invalid_image"},
        "detail": {"type": "string", "description": "what was wrong, for a person"},
    },
}


def document_error_body(app: FastAPI) -> None:
    """Make the OpenAPI schema say what a 422 really looks like.

    FastAPI documents every validation failure as its own ``HTTPValidationError`` (``detail`` a
    list of objects), but the handler below answers ``{"error", "detail"}`` like every other
    error. A client generated from the schema, or a schemathesis run, would otherwise reject
    every 422 the API sends.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["HTTPValidationError"] = ERROR_SCHEMA
            schemas.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    document_error_body(app)

    @app.exception_handler(core.RestauroError)
    async def _restauro(_: Request, exc: core.RestauroError) -> JSONResponse:
        return error_response(status_for(exc), exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; see the server log")
