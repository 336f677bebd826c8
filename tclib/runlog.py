"""What `tclib reproduce` shows while notebooks run: their output, live in the terminal and kept in a log file.

`run_log(folder)` opens `reproduce-<time>.log` there and sends tclib's own log records to it too;
`Lines` is a file-like object papermill writes one of the kernel's output streams into, which
turns the chunks into lines for a `Console`: finished lines go to the terminal and the log file,
and a progress bar (a line redrawn with carriage returns) is redrawn in place on a terminal while
the log file gets its state every PROGRESS_EVERY seconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

log = logging.getLogger("tclib")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as the notebooks log (notebook.setup_logging)
PROGRESS_EVERY = 30.0  # seconds between progress-bar lines in the log file (and in a terminal that is no tty)


@contextmanager
def run_log(logs_dir: Path, name: str = "reproduce") -> Iterator[Console]:
    """Open logs/<name>-<time>.log; tclib's own log records go there too while the run lasts."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    path = logs_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    if path.exists():
        path = path.with_name(f"{path.stem}-{os.getpid()}.log")
    with open(path, "a", encoding="utf-8") as file:
        handler = logging.StreamHandler(file)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.setLevel(logging.INFO)
        level = log.level
        if log.getEffectiveLevel() > logging.INFO:
            log.setLevel(logging.INFO)
        log.addHandler(handler)
        try:
            log.info("log of this run: %s", path)
            yield Console(file, path)
        finally:
            log.removeHandler(handler)
            log.setLevel(level)


class Console:
    """Where a notebook's output goes: finished lines to the terminal (stderr) and the log file.

    A progress bar (a line redrawn with carriage returns) is redrawn in place on a terminal; the
    log file, and a terminal that is no tty, get its state as a line every PROGRESS_EVERY seconds.
    """

    def __init__(self, log_file: TextIO, log_path: Path, terminal: TextIO | None = None) -> None:
        self.log_file, self.log_path = log_file, log_path
        self.terminal = terminal or sys.stderr
        self.live = self.terminal.isatty()
        self._showing = False  # a progress line is drawn on the terminal
        self._last_progress = float("-inf")

    def line(self, text: str) -> None:
        self.end_progress()
        self.terminal.write(text + "\n")
        self.terminal.flush()
        self.write_log(text)

    def progress(self, text: str) -> None:
        if self.live:
            width = shutil.get_terminal_size().columns
            self.terminal.write("\r\x1b[K" + text[: width - 1])
            self.terminal.flush()
            self._showing = True
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            if not self.live:
                self.terminal.write(text + "\n")
                self.terminal.flush()
            self.write_log(text)

    def end_progress(self) -> None:
        if self._showing:
            self.terminal.write("\r\x1b[K")
            self.terminal.flush()
            self._showing = False

    def write_log(self, text: str) -> None:
        self.log_file.write(text + "\n")
        self.log_file.flush()


class Lines:
    """A file papermill writes one output stream of the kernel into, chunk by chunk.

    Splits the chunks into lines; of a line redrawn with carriage returns only its last state
    counts. Finished lines go to `console.line`, the state of an unfinished one to `console.progress`.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending = ""

    def write(self, chunk: str) -> None:
        *lines, self._pending = (self._pending + chunk).split("\n")
        for line in lines:
            text = last_state(line)
            if text.strip():
                self.console.line(text.rstrip())
        state = last_state(self._pending)
        if state.strip():
            self.console.progress(state.rstrip())

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        """The stream ended: an unfinished line counts as finished; a progress line is cleared (idempotent)."""
        text, self._pending = last_state(self._pending), ""
        self.console.end_progress()
        if text.strip():
            self.console.line(text.rstrip())


def last_state(line: str) -> str:
    """What a terminal shows of a line drawn over with carriage returns ("a\\rb" shows "b")."""
    states = line.split("\r")
    return states[-1] or (states[-2] if len(states) > 1 else "")
