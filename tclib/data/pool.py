"""One helper for every loop that decodes (or encodes) videos in worker processes: the frame cache's
build, decoding on the fly, and the synthetic data set's writer."""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.pool import AsyncResult
from typing import TypeVar

from ..progress import progress

__all__ = ["parallel_map"]

Task = TypeVar("Task")
Result = TypeVar("Result")


def parallel_map(function: Callable[[Task], Result], tasks: Sequence[Task], workers: int, desc: str,
                 frames_of: Callable[[Result], int] | None = None, ordered: bool = True,
                 min_bar: int = 1, window: int | None = None) -> Iterator[Result]:
    """`function(task)` for every task, in `workers` forked processes (here, when one worker or one task
    is enough), in the order of `tasks` (or as they finish, without `ordered`), with a progress bar in
    videos/s (and frames/s when `frames_of` counts a result's frames; no bar under `min_bar` tasks).
    With `window`, at most that many tasks are given out ahead of the caller (in order), so that the
    results waiting for it are bounded whatever the number of tasks. The processes end however the
    caller stops reading: at the end, on an error, on a break."""
    bar = progress(total=len(tasks), desc=desc, unit="video", disable=len(tasks) < min_bar)
    pool = None
    started, frames = time.monotonic(), 0
    try:
        if workers > 1 and len(tasks) > 1:
            pool = multiprocessing.get_context("fork").Pool(min(workers, len(tasks)))
            if window is not None:
                results = _windowed(pool, function, tasks, window)
            else:
                results = (pool.imap if ordered else pool.imap_unordered)(function, tasks, chunksize=1)
        else:
            results = map(function, tasks)
        for result in results:
            bar.update(1)
            if frames_of is not None:
                frames += frames_of(result)
                bar.set_postfix(frames_per_s=f"{frames / max(time.monotonic() - started, 1e-9):.1f}", refresh=False)
            yield result
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()


def _windowed(pool, function: Callable[[Task], Result], tasks: Sequence[Task], window: int) -> Iterator[Result]:
    """The results of `tasks` in order, at most `window` of them given out to the pool at a time."""
    pending: deque[AsyncResult[Result]] = deque()
    for task in tasks:
        pending.append(pool.apply_async(function, (task,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()
