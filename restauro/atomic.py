"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Job files are polled by the API while a worker writes them, bundles and checkpoints must survive
a crash mid-write. Every writer in Restauro goes through :func:`atomic_path`: write a uniquely
named sibling, then ``os.replace`` it over the target (atomic on POSIX within one file system).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: Path | str, mkdir: bool = True) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; renamed over ``path`` when the block succeeds.

    The temporary name is unique (two writers never share it) and hidden (a dot file), and it is
    removed if the block raises. ``mkdir=False`` refuses to create the parent folder: a job
    folder deleted meanwhile must stay deleted.
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path | str, data: bytes, mkdir: bool = True) -> Path:
    with atomic_path(path, mkdir) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path | str, text: str, mkdir: bool = True) -> Path:
    with atomic_path(path, mkdir) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(
    path: Path | str, data: Any, *, sort_keys: bool = False, mkdir: bool = True
) -> Path:
    """JSON, indented for people who open the file, written atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n", mkdir)
