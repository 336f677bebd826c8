"""Progress bars that suit where the code runs.

- In JupyterLab (or a notebook run by hand): tqdm's widget bar, one per loop, redrawn in place.
- In a terminal: tqdm's text bar.
- In a batch run (`tclib reproduce` sets TCLIB_BATCH=1 for the notebooks' kernels): no bar at all,
  but a log line every EVERY seconds while a loop runs, and one when a loop of `leave=True` ends,
  so an executed notebook records each stage's progress in a few lines, not thousands of redraws.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

BATCH_ENV = "TCLIB_BATCH"
EVERY = 30.0  # seconds between a batch run's progress lines

log = logging.getLogger("tclib.progress")


def in_batch_run() -> bool:
    """True inside a notebook that `tclib reproduce` runs."""
    return os.environ.get(BATCH_ENV, "") not in ("", "0")


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             leave: bool = True, disable: bool = False) -> Any:
    """A tqdm bar (widget in a notebook, text in a terminal) or, in a batch run, a LogProgress.
    Both iterate over `iterable` and take update(n), set_postfix(**values) and close()."""
    if in_batch_run():
        return LogProgress(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable)
    return _bar_class()(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable)


def _bar_class() -> type:
    """tqdm's widget bar inside a Jupyter kernel, its text bar elsewhere. Not tqdm.auto: its class
    also derives from tqdm_asyncio, which opens an iterator of the iterable on construction and
    another on iteration, so a shuffling DataLoader would draw its seed twice per epoch and train
    on another order than without a bar."""
    try:
        from IPython import get_ipython

        in_kernel = get_ipython() is not None and hasattr(get_ipython(), "kernel")
    except ImportError:
        in_kernel = False
    if in_kernel:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


class LogProgress:
    """Progress as log lines: `desc: n/total unit (pct), elapsed s, postfix`, every EVERY seconds and
    at the end when `leave` (a short inner loop that is not left says nothing)."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", leave: bool = True, disable: bool = False) -> None:
        self.iterable, self.desc, self.unit, self.leave, self.disable = iterable, desc, unit, leave, disable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.postfix, self.logged_n = total, 0, "", 0
        self.started = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self.last >= EVERY:
            self.last, self.logged_n = now, self.n
            log.info("%s", self.line())

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def line(self) -> str:
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {count} {self.unit}{share}, {time.monotonic() - self.started:.0f} s{postfix}"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if (not self.disable and (self.leave or time.monotonic() - self.started >= EVERY)
                and self.n and self.n != self.logged_n):
            log.info("%s", self.line())
