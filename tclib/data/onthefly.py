"""Decoding on the fly: a frame source that decodes videos when they are read, with no cache on disk."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import DataError
from .framecache import Source, VideoSpec, cache_params, frame_shape, segments_of, video_sources
from .frames import Sampling, read_padded_frames, sampled_frame_count
from .pool import parallel_map
from .rows import RowView, as_rows

__all__ = ["DecodedFrames"]

log = logging.getLogger(__name__)

BAR_MIN_ROWS = 16  # frames_of() shows a progress bar from this many rows on


def decode(task: tuple[Source, Sampling]) -> tuple[np.ndarray, np.ndarray]:
    (path, start, end), sampling = task
    return read_padded_frames(path, sampling, start, end)


class DecodedFrames:
    """A frame source that decodes videos when they are read, with no cache on disk.

    Same frames as :func:`tclib.data.build_frame_cache` with the same sampling
    (:func:`tclib.data.frames.read_padded_frames`) and the same interface as
    :class:`tclib.data.FrameCache`. Every read decodes again; a missing or corrupt video raises
    :class:`DataError` naming the file when it is read.

    Args:
        videos: video_id -> path, or clip_id -> (path, start_time, end_time) for segments.
        sampling: which frames, at what size.
        workers: processes (forked) that :meth:`frames_of` uses for many rows at once.

    ``mask[rows]`` / :meth:`mask_of` read only each container's frame count and rate (no
    decoding), which fixes how many frames :func:`read_video_frames` returns.
    """

    def __init__(self, videos: Mapping[str, VideoSpec], sampling: Sampling, workers: int = 1) -> None:
        self.sampling = sampling
        self.params: dict = cache_params(sampling)
        self.video_ids, self._sources = video_sources(videos, "on-the-fly frames")
        self.segments: dict[str, list[int]] = segments_of(self.video_ids, self._sources)
        self.workers = int(workers)
        self._row = {v: i for i, v in enumerate(self.video_ids)}
        if len(self._row) != len(self.video_ids):
            raise DataError("on-the-fly frames: video ids are not unique")
        self.failed: dict[str, str] = {}
        missing = [p for p, _, _ in self._sources if not os.path.isfile(p)]
        if missing:
            log.warning("on-the-fly frames: %d of %d video files are missing (reading them will fail), e.g. %s",
                        len(missing), len(self._sources), missing[0])
        self._make_views()

    def _make_views(self) -> None:
        shape = frame_shape(self.sampling)
        n = len(self.video_ids)
        self.frames = RowView(n, shape, np.uint8, self._take_frames, lambda row: self._decode_row(row)[0],
                              "on-the-fly frames")
        self.mask = RowView(n, shape[:1], np.int64, self._take_mask, self._mask_row, "on-the-fly mask")

    @property
    def complete(self) -> bool:
        """Always True: nothing is built ahead."""
        return True

    def __len__(self) -> int:
        return len(self.video_ids)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._row

    def index_of(self, video_id: str) -> int:
        """Row of ``video_id``; DataError if it is not one of the videos."""
        row = self._row.get(video_id)
        if row is None:
            raise DataError(f"video {video_id} is not among the {len(self)} on-the-fly videos")
        return row

    def source_of(self, row: int) -> tuple[str, int | None, int | None]:
        """(path, start_time, end_time) of a row."""
        return self._sources[row]

    def _decode_row(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        return decode((self._sources[row], self.sampling))

    def _mask_row(self, row: int) -> np.ndarray:
        path, start, end = self._sources[row]
        mask = np.zeros(self.sampling.max_frames, dtype=np.int64)
        mask[:sampled_frame_count(path, self.sampling, start, end)] = 1
        return mask

    def get(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(frames uint8 (F, 3, S, S), mask int64 (F,)) of one video, decoded now."""
        return self._decode_row(self.index_of(video_id))

    def _take_frames(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *frame_shape(self.sampling)), dtype=np.uint8)
        tasks = [(self._sources[int(r)], self.sampling) for r in rows]
        results = parallel_map(decode, tasks, self.workers, "decode frames", frames_of=lambda r: int(r[1].sum()),
                               min_bar=BAR_MIN_ROWS)
        for i, (frames, _) in enumerate(results):
            out[i] = frames
        return out

    def _take_mask(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), self.sampling.max_frames), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i] = self._mask_row(int(r))
        return out

    def frames_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 (len(rows), F, 3, S, S), decoded now, in the order of ``rows``."""
        return self._take_frames(as_rows(rows, len(self), "on-the-fly frames"))

    def mask_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """int64 (len(rows), F), in the order of ``rows``."""
        return self._take_mask(as_rows(rows, len(self), "on-the-fly mask"))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("frames", None)
        state.pop("mask", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_views()

    def __repr__(self) -> str:
        return f"DecodedFrames(videos={len(self)}, params={self.params})"
