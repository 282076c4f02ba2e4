"""Uploads: refused as early as possible, before they fill memory or disk.

The size limit is enforced while the body streams in (a pure ASGI middleware counting bytes), so a
multi-gigabyte upload is cut off at the limit instead of being spooled first and rejected after.
Upload endpoints accept ``multipart/form-data`` only; anything else is a 415 before parsing.
"""

from __future__ import annotations

import json

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import UnsupportedMediaType, UploadTooLarge

MULTIPART_SLACK = 256 * 1024  # form fields and part headers around the files


class _BodyTooLarge(Exception):
    pass


class UploadGuard:
    """413 for bodies over ``limit`` bytes; 415 for non-multipart bodies on upload paths."""

    def __init__(self, app: ASGIApp, limit: int, multipart_paths: set[str]) -> None:
        self.app = app
        self.limit = limit
        self.multipart_paths = multipart_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"].rstrip("/") in self.multipart_paths:
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "multipart/form-data":
                await _reject(
                    send,
                    415,
                    "unsupported_media_type",
                    f"send multipart/form-data (curl -F image=@scan.png), not {ctype or 'nothing'}",
                )
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _reject(send, 413, "upload_too_large", self._message())
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _reject(send, 413, "upload_too_large", self._message())

    def _message(self) -> str:
        return f"the request body exceeds the limit of {self.limit:,} bytes"


async def _reject(send: Send, status: int, code: str, detail: str) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


ACCEPTED_TYPES = ("image/", "application/octet-stream")


async def read_upload(upload: UploadFile, name: str, max_bytes: int) -> bytes:
    """The bytes of one uploaded file, with its declared type and size checked."""
    ctype = (upload.content_type or "application/octet-stream").lower()
    if not ctype.startswith(ACCEPTED_TYPES):
        raise UnsupportedMediaType(
            f"{name} must be an image (image/png, image/jpeg...), not {ctype}"
        )
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLarge(f"{name} exceeds the upload limit of {max_bytes:,} bytes")
    return data
