"""Reading and writing the kit's files: small JSON files with errors that name them, and files that
other processes may write or read at the same time.

`read_json(path, kind)` parses a JSON file; a missing, unreadable or invalid file is a DataError
naming the file and what is wrong.

`atomic_path(path)` yields a temporary name beside `path` that includes the process id and a
random token, and renames it onto `path` (`os.replace`) when the block succeeds, removing it when
the block fails: two processes or threads writing the same file never write into one temporary,
and a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DataError


def read_json(path: str | os.PathLike, kind: str = "file") -> Any:
    """Parse a JSON file; DataError "<kind> not found: <path>", or naming the path and the parse error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{kind} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON in {path}: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


SIGNATURE_BYTES = 1 << 16  # of a file's head and of its tail


def content_signature(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies a file's content wherever it lies: its size and a hash of its first and last
    64 KiB (a container's header and index, a checkpoint's tensor table). A copy, a move or a download
    keeps it; a file replaced with other content changes it. {"missing": True} for no file."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest = hashlib.sha256(f.read(SIGNATURE_BYTES))
            if size > SIGNATURE_BYTES:
                digest.update(os.pread(f.fileno(), SIGNATURE_BYTES, max(SIGNATURE_BYTES, size - SIGNATURE_BYTES)))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return {"missing": True}
    return {"size": size, "sha256": digest.hexdigest()[:32]}


def temporary_path(path: str | os.PathLike, tag: str = "tmp") -> Path:
    """`<stem>.<pid>-<random>.<tag><suffix>` beside `path`: unique per process and per call."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.{tag}{path.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike, tag: str = "tmp") -> Iterator[Path]:
    """Yield a `temporary_path` to write; it replaces `path` when the block succeeds, else it is removed."""
    path = Path(path)
    tmp = temporary_path(path, tag)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> bool:
    """Write `text` to `path` atomically, unless the file already holds exactly that text (a rerun
    leaves finished files untouched). Returns whether it wrote."""
    path, data = Path(path), text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True
