"""The frame cache on disk: its layout and its reader, and the interface of every frame source.

A frame source holds, for each clip, the frames :func:`tclib.data.frames.read_padded_frames` gives:
the sampled frames, zero-padded to ``max_frames``, and their mask. Two sources share one
interface (:class:`FrameSource`, used by :class:`tclib.data.PairDataset` and the experiment):
this frame cache (built by :mod:`tclib.data.cachebuilder`) and decoding on the fly
(:mod:`tclib.data.onthefly`).

Layout of a cache directory::

    frames-00000.npy   uint8 (n, max_frames, 3, S, S), zero-padded (.npy), rows 0..
    mask-00000.npy     int64 (n, max_frames): 1 for real frames, 0 for padding
    frames-00001.npy   the next ``shard_size`` videos, ...
    index.json         the video ids, in row order
    manifest.json      sampling and storage, the shards, per-row done flags, failures, segments
    failures.csv       video, reason: videos that could not be decoded

With ``storage="jpeg"`` each shard's frames are ``frames-00000.jpeg`` with its
``frames-00000.index.npy`` instead (see data/jpegrows.py): every real frame as a JPEG of
``jpeg_quality``, padding stored as nothing; the masks are the same .npy files. The storage is one
of the cache's parameters (a manifest without it is a raw cache). Each shard holds ``shard_size``
consecutive rows (the last one fewer). A cache written before shards existed (one ``frames.npy`` and
``mask.npy``, no ``shards`` in its manifest) reads as a single shard.

Videos are given as ``{video_id: path}`` or, for data sets whose clips are segments of longer
videos, ``{clip_id: (path, start_time, end_time)}`` with whole seconds (or ``None`` for both).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, cast, get_args

import numpy as np

from ..errors import DataError
from ..files import read_json
from .frames import Sampling
from .jpegrows import JpegRows
from .npyrows import NpyRows
from .rows import RowView, as_rows, is_int

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_JPEG_QUALITY", "DEFAULT_SHARD_SIZE", "FrameCache", "FrameSource", "STORAGES", "Storage", "VideoSpec",
           "cache_params"]

Storage = Literal["raw", "jpeg"]  # uint8 arrays, or each frame a JPEG (data/jpegrows.py)
STORAGES = get_args(Storage)
DEFAULT_JPEG_QUALITY = 90
DEFAULT_SHARD_SIZE = 512
MANIFEST_VERSION = 2

#: a video: its path, or (path, start_time, end_time) for a segment in whole seconds
VideoSpec = str | os.PathLike | tuple
Source = tuple[str, "int | None", "int | None"]


class FrameSource(Protocol):
    """What :class:`tclib.data.PairDataset` and the experiment use of a frame source."""

    video_ids: list[str]
    sampling: Sampling
    params: dict
    failed: dict[str, str]
    frames: RowView
    mask: RowView

    def __len__(self) -> int: ...

    def index_of(self, video_id: str) -> int: ...

    def get(self, video_id: str) -> tuple[np.ndarray, np.ndarray]: ...

    def frames_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray: ...

    def mask_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray: ...


# ------------------------------------------------------------------------------------ parameters


def cache_params(sampling: Sampling, storage: str = "raw", jpeg_quality: int = DEFAULT_JPEG_QUALITY,
                 where: str = "frame cache") -> dict[str, Any]:
    """The manifest's parameters: the sampling and the storage (a JPEG cache's quality too), checked."""
    if storage not in STORAGES:
        raise DataError(f"{where}: storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    params: dict[str, Any] = {**sampling.as_dict(), "storage": storage}
    if storage == "jpeg":
        if not is_int(jpeg_quality) or not 1 <= jpeg_quality <= 100:
            raise DataError(f"{where}: jpeg_quality must be an integer in 1..100, got {jpeg_quality!r}")
        params["jpeg_quality"] = int(jpeg_quality)
    return params


def stored_params(manifest: dict) -> dict:
    """The manifest's parameters; a cache written before JPEG storage existed is raw."""
    return {"storage": "raw", **manifest.get("params", {})}


def check_params(manifest_path: Path, stored: dict, wanted: Mapping[str, Any]) -> None:
    for key, value in wanted.items():
        if key not in stored:
            raise DataError(f"{manifest_path} has no sampling parameter {key!r}")
        if stored[key] != value:
            raise DataError(
                f"frame cache {manifest_path.parent} was built with {key}={stored[key]!r}, "
                f"but {key}={value!r} was asked for; use another cache directory or delete this one"
            )


def video_sources(videos: Mapping[str, VideoSpec], where: str) -> tuple[list[str], list[Source]]:
    """Video ids and (path, start_time, end_time) of each; DataError on a malformed entry."""
    if not videos:
        raise DataError(f"no videos given for {where}")
    ids, sources = [], []
    for vid, spec in videos.items():
        if isinstance(spec, (str, os.PathLike)):
            path, start, end = spec, None, None
        elif isinstance(spec, (tuple, list)) and len(spec) == 3:
            path, start, end = spec
        else:
            raise DataError(f"{where}: video {vid!r} must be a path or (path, start_time, end_time), got {spec!r}")
        if not isinstance(path, (str, os.PathLike)):
            raise DataError(f"{where}: video {vid!r} has no path: {spec!r}")
        if (start is None) != (end is None) or (start is not None and not (is_int(start) and is_int(end)
                                                                          and 0 <= start < end)):
            raise DataError(
                f"{where}: segment of video {vid!r} ({path}) must be whole seconds with "
                f"0 <= start_time < end_time, or None for both; got start_time={start!r}, end_time={end!r}"
            )
        ids.append(str(vid))
        sources.append((str(path), None if start is None else int(start), None if end is None else int(end)))
    return ids, sources


def segments_of(ids: Sequence[str], sources: Sequence[Source]) -> dict[str, list[int]]:
    """{clip id: [start, end]} for the entries that are segments."""
    return {vid: [s, e] for vid, (_, s, e) in zip(ids, sources, strict=True) if s is not None and e is not None}


# ---------------------------------------------------------------------------------------- layout


def shard_layout(n: int, shard_size: int, storage: str = "raw") -> list[dict]:
    extension = "jpeg" if storage == "jpeg" else "npy"
    return [{"frames": f"frames-{k:05d}.{extension}", "mask": f"mask-{k:05d}.npy", "start": start,
             "count": min(shard_size, n - start)} for k, start in enumerate(range(0, n, shard_size))]


def check_layout(manifest_path: Path, shards: Any, n: int) -> list[dict]:
    """The manifest's shard list, checked to cover rows 0..n-1 in order."""
    if not isinstance(shards, list) or not shards:
        raise DataError(f"{manifest_path}: 'shards' must be a non-empty list")
    start = 0
    out = []
    for k, shard in enumerate(shards):
        if not isinstance(shard, dict) or not {"frames", "mask", "start", "count"} <= set(shard):
            raise DataError(f"{manifest_path}: shard {k} must have frames, mask, start and count")
        if shard["start"] != start or not is_int(shard["count"]) or shard["count"] < 1:
            raise DataError(f"{manifest_path}: shard {k} covers rows {shard['start']}..+{shard['count']}, "
                            f"expected to start at row {start}")
        for key in ("frames", "mask"):
            name = shard[key]
            if not isinstance(name, str) or Path(name).name != name:
                raise DataError(f"{manifest_path}: shard {k} has an invalid file name {name!r}")
        out.append(dict(shard))
        start += shard["count"]
    if start != n:
        raise DataError(f"{manifest_path}: the shards hold {start} rows, the cache has {n} videos")
    return out


def stored_layout(manifest_path: Path, manifest: dict, n: int) -> list[dict]:
    if "shards" in manifest:
        return check_layout(manifest_path, manifest["shards"], n)
    # a cache written before shards: one frames.npy and one mask.npy
    return [{"frames": "frames.npy", "mask": "mask.npy", "start": 0, "count": n}]


def open_shard(cache_dir: Path, shard: dict, sampling: Sampling, mode: str, params: dict
               ) -> tuple[NpyRows | JpegRows, NpyRows]:
    """One shard's frames and mask files, their shapes and dtypes checked (DataError otherwise)."""
    shape = frame_shape(sampling)
    count = shard["count"]
    frames_path, mask_path = cache_dir / shard["frames"], cache_dir / shard["mask"]
    want = {frames_path: ((count, *shape), np.uint8), mask_path: ((count, shape[0]), np.int64)}
    arrays: list[NpyRows | JpegRows] = []
    for path, (want_shape, want_dtype) in want.items():
        if not path.is_file():
            raise DataError(f"frame cache file not found: {path}")
        try:
            arr: NpyRows | JpegRows
            if path == frames_path and params["storage"] == "jpeg":
                arr = JpegRows(path, shape[1:], params["jpeg_quality"], mode=mode)
            else:
                arr = NpyRows(path, mode=mode)
        except (DataError, OSError) as exc:
            raise DataError(f"cannot read frame cache array {path}: {exc}") from exc
        if arr.shape != want_shape or arr.dtype != want_dtype:
            raise DataError(f"{path} holds {arr.dtype} {arr.shape}, expected {np.dtype(want_dtype)} {want_shape}; "
                            "delete the cache directory")
        arrays.append(arr)
    return arrays[0], cast(NpyRows, arrays[1])  # the mask is always a .npy file


def frame_shape(sampling: Sampling) -> tuple[int, int, int, int]:
    """The shape of one video's frames: (max_frames, 3, image_size, image_size)."""
    return (sampling.max_frames, 3, sampling.image_size, sampling.image_size)


def read_manifest(cache_dir: Path) -> dict:
    manifest = read_json(cache_dir / "manifest.json", "frame cache file")
    if not isinstance(manifest, dict) or "params" not in manifest:
        raise DataError(f"{cache_dir / 'manifest.json'} has no 'params'")
    return manifest


def read_index(cache_dir: Path) -> list[str]:
    ids = read_json(cache_dir / "index.json", "frame cache file")
    if not isinstance(ids, list):
        raise DataError(f"{cache_dir / 'index.json'} must hold a list of video ids")
    return [str(v) for v in ids]


# ---------------------------------------------------------------------------------------- reader


class FrameCache:
    """Read-only view of a frame cache directory (its shards read by rows, see data/npyrows.py).

    Args:
        cache_dir: the directory written by :func:`tclib.data.build_frame_cache`.
        expect: the sampling (or manifest parameters) that must match the manifest (DataError otherwise).

    ``frames`` and ``mask`` are :class:`RowView` s over all shards: ``frames[row]`` and
    ``frames[rows]`` are fresh arrays (in the order of ``rows``), read with plain file I/O so that a
    process holds only what it read (see data/npyrows.py). Pickles by directory (DataLoader
    workers reopen the files).
    """

    def __init__(self, cache_dir: str | os.PathLike, expect: Sampling | Mapping[str, Any] | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self._expect = expect
        manifest_path = self.cache_dir / "manifest.json"
        manifest = read_manifest(self.cache_dir)
        self.params: dict = stored_params(manifest)
        if expect:
            check_params(manifest_path, self.params, expect.as_dict() if isinstance(expect, Sampling) else expect)
        missing = [k for k in Sampling.__dataclass_fields__ if k not in self.params]
        if missing:
            raise DataError(f"{manifest_path} has no sampling parameter {missing[0]!r}")
        self.sampling = Sampling(**{k: self.params[k] for k in Sampling.__dataclass_fields__})
        self.video_ids = read_index(self.cache_dir)
        self._row = {v: i for i, v in enumerate(self.video_ids)}
        n = len(self.video_ids)
        self.done = np.asarray(manifest.get("done", [0] * n), dtype=bool)
        if self.done.shape != (n,):
            raise DataError(f"frame cache {self.cache_dir} is inconsistent: {n} ids in index.json, "
                            f"{self.done.size} done flags in manifest.json")
        self.failed: dict[str, str] = {v: info.get("reason", "") for v, info in manifest.get("failed", {}).items()}
        self.segments: dict[str, list[int]] = dict(manifest.get("segments", {}))
        self.shards: list[dict] = stored_layout(manifest_path, manifest, n)
        self._arrays = [open_shard(self.cache_dir, s, self.sampling, "r", self.params) for s in self.shards]
        self._starts = np.array([s["start"] for s in self.shards], dtype=np.int64)
        shape = frame_shape(self.sampling)
        self.frames = RowView(n, shape, np.uint8, lambda rows: self._take(rows, 0),
                              lambda row: self._one(row, 0), f"frames of {self.cache_dir}")
        self.mask = RowView(n, shape[:1], np.int64, lambda rows: self._take(rows, 1),
                            lambda row: self._one(row, 1), f"mask of {self.cache_dir}")
        if not self.complete:
            log.warning("frame cache %s is incomplete: %d of %d videos decoded", self.cache_dir,
                        int(self.done.sum()), n)

    def _one(self, row: int, which: int) -> np.ndarray:
        k = int(np.searchsorted(self._starts, row, side="right")) - 1
        return self._arrays[k][which].read(np.array([row - int(self._starts[k])]))[0]

    def _take(self, rows: np.ndarray, which: int, out: np.ndarray | None = None) -> np.ndarray:
        first = self._arrays[0][which]
        shape = (len(rows), *first.row_shape)
        if out is None:
            out = np.empty(shape, dtype=first.dtype)
        elif out.shape != shape or out.dtype != first.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {first.dtype} array of shape {shape}, got {out.dtype} "
                             f"{out.shape}")
        if len(rows) == 0:
            return out
        shard = np.searchsorted(self._starts, rows, side="right") - 1
        for k in np.unique(shard):
            sel = np.flatnonzero(shard == k)
            self._arrays[k][which].read_into(rows[sel] - self._starts[k], out, sel)
        return out

    @property
    def complete(self) -> bool:
        """True when every video was either decoded or recorded as failed."""
        return all(d or v in self.failed for v, d in zip(self.video_ids, self.done, strict=True))

    def __len__(self) -> int:
        return len(self.video_ids)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._row and bool(self.done[self._row[video_id]])

    def index_of(self, video_id: str) -> int:
        """Row of ``video_id``; DataError if it is not in the cache, failed, or not decoded yet."""
        row = self._row.get(video_id)
        if row is None:
            raise DataError(f"video {video_id} is not in the frame cache {self.cache_dir}")
        if video_id in self.failed:
            raise DataError(f"video {video_id} failed to decode when the frame cache {self.cache_dir} was built: "
                            f"{self.failed[video_id]}")
        if not self.done[row]:
            raise DataError(f"video {video_id} is not decoded yet in the frame cache {self.cache_dir}")
        return row

    def get(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(frames uint8 (F, 3, S, S), mask int64 (F,)) of one video, read now."""
        row = self.index_of(video_id)
        return self._one(row, 0), self._one(row, 1)

    def frames_of(self, rows: Sequence[int] | np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """uint8 (len(rows), F, 3, S, S) gathered across shards, in the order of ``rows``; read into
        `out` when given (a batch's array in shared memory, say)."""
        return self._take(as_rows(rows, len(self), f"frames of {self.cache_dir}"), 0, out)

    def mask_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """int64 (len(rows), F), in the order of ``rows``."""
        return self._take(as_rows(rows, len(self), f"mask of {self.cache_dir}"), 1)

    # open files must not be pickled (DataLoader workers): reopen from the directory
    def __getstate__(self) -> dict:
        return {"cache_dir": str(self.cache_dir), "expect": self._expect}

    def __setstate__(self, state: dict) -> None:
        type(self).__init__(self, state["cache_dir"], expect=state["expect"])

    def __repr__(self) -> str:
        return f"FrameCache({str(self.cache_dir)!r}, videos={len(self)}, shards={len(self.shards)}, params={self.params})"
