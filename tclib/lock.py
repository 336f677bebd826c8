"""Running beside other processes: one run per experiment folder.

`experiment_lock(exp_dir)` holds an exclusive `flock` on `<exp_dir>/.lock` while a run works in
that folder; the file names the holder (pid, host, command line, start time) so that a second run
can say whom it is waiting for. The kernel releases the lock when the holder exits, however it
exits, so a crashed run never leaves a stale lock behind (the file itself stays, unlocked).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LockedError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


@contextmanager
def experiment_lock(exp_dir: str | os.PathLike, wait: bool = False) -> Iterator[Path]:
    """Hold `<exp_dir>/.lock` exclusively for the block; yields the lock file's path.

    When another process holds it: raise LockedError naming that process, or with `wait=True`
    log whom we wait for and block until it is released.
    """
    path = Path(exp_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as file:  # "a+": do not erase the holder's note before we hold it
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(path)
            if not wait:
                raise LockedError(
                    f"{path.parent} is in use by another run ({holder}); wait for it to finish, "
                    f"or pass --wait (wait=True) to start when it is done") from None
            log.info("%s is in use; waiting for %s", path.parent, holder)
            fcntl.flock(file, fcntl.LOCK_EX)
        file.seek(0)
        file.truncate()
        file.write(json.dumps(_holder_note()) + "\n")
        file.flush()
        yield path
    # closing the file released the lock


def describe_holder(path: str | os.PathLike) -> str:
    """'pid N on HOST since TIME: COMMAND' from a lock file; what is known when the note is partial."""
    try:
        note = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        note = None
    if not isinstance(note, dict):
        return "a process that has not written its pid yet"
    return (f"pid {note.get('pid', '?')} on {note.get('host', '?')} since {note.get('since', '?')}: "
            f"{note.get('command', '?')}")


def _holder_note() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": shlex.join(sys.argv),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}
