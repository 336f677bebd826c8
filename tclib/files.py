"""Writing files that other processes may write or read at the same time.

`atomic_path(path)` yields a temporary name beside `path` that includes the process id and a
random token, and renames it onto `path` (`os.replace`) when the block succeeds, removing it when
the block fails: two processes or threads writing the same file never write into one temporary,
and a reader never sees half a file.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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
