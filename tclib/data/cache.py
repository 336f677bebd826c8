"""Frame sources: a sharded frame cache on disk, or decoding on the fly.

Both sources give the same frames for a video: :func:`read_video_frames` (sampling, resize and
center crop) then :func:`pad_frames` to ``max_frames``. They share one interface, used by
:class:`tclib.data.PairDataset` and the pipeline: ``video_ids``, ``index_of``, ``get``, ``failed``,
``params``, ``complete``, ``frames_of(rows)``, ``mask_of(rows)`` and the array-like views
``frames`` (uint8 (N, F, 3, S, S)) and ``mask`` (int64 (N, F)), which support ``len()``,
``shape``, integer and integer-array indexing and slicing over rows.

Layout of a cache directory::

    frames-00000.npy   uint8 (n, max_frames, 3, S, S), zero-padded (.npy), rows 0..
    mask-00000.npy     int64 (n, max_frames): 1 for real frames, 0 for padding
    frames-00001.npy   the next ``shard_size`` videos, ...
    index.json         the video ids, in row order
    manifest.json      sampling parameters, the shards, per-row done flags, failures, segments
    failures.csv       video, reason: videos that could not be decoded

With ``storage="jpeg"`` each shard's frames are ``frames-00000.jpeg`` with its
``frames-00000.index.npy`` instead (see data/jpegrows.py): every real frame as a JPEG of
``jpeg_quality``, padding stored as nothing; the masks are the same .npy files. The storage is one
of the cache's parameters (a manifest without it is a raw cache).

Each shard holds ``shard_size`` consecutive rows (the last one fewer). A cache written before
shards existed (one ``frames.npy`` and ``mask.npy``, no ``shards`` in its manifest) reads as a
single shard.

The manifest is rewritten every few seconds during a build and when the build stops for any
reason, so an interrupted build resumes where it was and never decodes a finished video again;
a shard file that went missing is written again, the others are kept. A cache built with other
sampling parameters is never rebuilt silently: asking for different parameters raises
:class:`DataError` naming the parameter. Videos that failed are retried on the next build only if
their file changed (size or modification time) or appeared.

Videos are given as ``{video_id: path}`` or, for data sets whose clips are segments of longer
videos, ``{clip_id: (path, start_time, end_time)}`` with whole seconds (or ``None`` for both).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, Union

import numpy as np

from tclib.data.files import read_json
from tclib.data.frames import pad_frames, read_video_frames, sampled_frame_count
from tclib.data.jpegrows import JpegRows, encode_frames, index_path
from tclib.data.npyrows import NpyRows
from tclib.errors import DataError
from tclib.files import write_text
from tclib.progress import progress

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "DecodedFrames",
    "FrameCache",
    "FrameSource",
    "PARAM_KEYS",
    "RowView",
    "VideoSpec",
    "build_frame_cache",
]

log = logging.getLogger(__name__)

PARAM_KEYS: tuple[str, ...] = ("max_frames", "image_size", "framerate", "slice_framepos")
STORAGES = ("raw", "jpeg")
DEFAULT_JPEG_QUALITY = 90
MANIFEST_VERSION = 2
DEFAULT_SHARD_SIZE = 512
_CHECKPOINT_SECONDS = 5.0
_BAR_MIN_ROWS = 16  # frames_of() on the fly shows a progress bar from this many rows on

#: a video: its path, or (path, start_time, end_time) for a segment in whole seconds
VideoSpec = Union[str, os.PathLike, tuple]
_Source = tuple[str, "int | None", "int | None"]


# ----------------------------------------------------------------------------- helpers


def _file_stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def _load_json(path: Path) -> Any:
    return read_json(path, "frame cache file")


def _stored_params(manifest: dict) -> dict:
    """The manifest's parameters; a cache written before JPEG storage existed is raw."""
    return {"storage": "raw", **manifest.get("params", {})}


def _check_params(manifest_path: Path, stored: dict, wanted: dict) -> None:
    for key, value in wanted.items():
        if key not in stored:
            raise DataError(f"{manifest_path} has no sampling parameter {key!r}")
        if stored[key] != value:
            raise DataError(
                f"frame cache {manifest_path.parent} was built with {key}={stored[key]!r}, "
                f"but {key}={value!r} was asked for; use another cache directory or delete this one"
            )


def _sampling_params(
    max_frames: int, image_size: int, framerate: int, slice_framepos: int, where: str,
    storage: str = "raw", jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> dict[str, Any]:
    """The sampling parameters as plain ints and the storage, checked (DataError naming ``where``)."""
    params: dict[str, Any] = {
        "max_frames": int(max_frames),
        "image_size": int(image_size),
        "framerate": int(framerate),
        "slice_framepos": int(slice_framepos),
        "storage": storage,
    }
    if storage not in STORAGES:
        raise DataError(f"{where}: storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if storage == "jpeg":
        if not _is_int(jpeg_quality) or not 1 <= jpeg_quality <= 100:
            raise DataError(f"{where}: jpeg_quality must be an integer in 1..100, got {jpeg_quality!r}")
        params["jpeg_quality"] = int(jpeg_quality)
    if params["max_frames"] < 1:
        raise DataError(f"{where}: max_frames must be >= 1, got {max_frames!r}")
    if params["image_size"] < 1:
        raise DataError(f"{where}: image_size must be >= 1, got {image_size!r}")
    if params["slice_framepos"] not in (0, 1, 2):
        raise DataError(f"{where}: slice_framepos must be 0, 1 or 2, got {slice_framepos!r}")
    return params


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _video_sources(videos: Mapping[str, VideoSpec], where: str) -> tuple[list[str], list[_Source]]:
    """Video ids and (path, start_time, end_time) of each; DataError on a malformed entry."""
    if not videos:
        raise DataError(f"no videos given for {where}")
    ids: list[str] = []
    sources: list[_Source] = []
    for vid, spec in videos.items():
        if isinstance(spec, (str, os.PathLike)):
            path, start, end = spec, None, None
        elif isinstance(spec, (tuple, list)) and len(spec) == 3:
            path, start, end = spec
        else:
            raise DataError(
                f"{where}: video {vid!r} must be a path or (path, start_time, end_time), got {spec!r}"
            )
        if not isinstance(path, (str, os.PathLike)):
            raise DataError(f"{where}: video {vid!r} has no path: {spec!r}")
        if (start is None) != (end is None) or (
            start is not None and not (_is_int(start) and _is_int(end) and 0 <= start < end)
        ):
            raise DataError(
                f"{where}: segment of video {vid!r} ({path}) must be whole seconds with "
                f"0 <= start_time < end_time, or None for both; got start_time={start!r}, end_time={end!r}"
            )
        ids.append(str(vid))
        sources.append((str(path), None if start is None else int(start), None if end is None else int(end)))
    return ids, sources


def _segments(ids: Sequence[str], sources: Sequence[_Source]) -> dict[str, list[int]]:
    """{clip id: [start, end]} for the entries that are segments."""
    return {vid: [s, e] for vid, (_, s, e) in zip(ids, sources) if s is not None}


def _decode(task: tuple[int, _Source, dict]) -> tuple[int, np.ndarray | None, np.ndarray | None, str | None]:
    """Decode one video; a DataError becomes a failure reason instead of an exception."""
    row, source, params = task
    try:
        padded, mask = _decode_or_raise((source, params))
    except DataError as exc:
        return row, None, None, str(exc)
    if params["storage"] == "jpeg":  # encoded here, in the decoding process
        return row, encode_frames(padded, params["jpeg_quality"]), mask, None
    return row, padded, mask, None


def _shard_layout(n: int, shard_size: int, storage: str = "raw") -> list[dict]:
    extension = "jpeg" if storage == "jpeg" else "npy"
    return [
        {
            "frames": f"frames-{k:05d}.{extension}",
            "mask": f"mask-{k:05d}.npy",
            "start": start,
            "count": min(shard_size, n - start),
        }
        for k, start in enumerate(range(0, n, shard_size))
    ]


def _check_layout(manifest_path: Path, shards: Any, n: int) -> list[dict]:
    """The manifest's shard list, checked to cover rows 0..n-1 in order."""
    if not isinstance(shards, list) or not shards:
        raise DataError(f"{manifest_path}: 'shards' must be a non-empty list")
    start = 0
    out = []
    for k, shard in enumerate(shards):
        if not isinstance(shard, dict) or not {"frames", "mask", "start", "count"} <= set(shard):
            raise DataError(f"{manifest_path}: shard {k} must have frames, mask, start and count")
        if shard["start"] != start or not _is_int(shard["count"]) or shard["count"] < 1:
            raise DataError(
                f"{manifest_path}: shard {k} covers rows {shard['start']}..+{shard['count']}, "
                f"expected to start at row {start}"
            )
        for key in ("frames", "mask"):
            name = shard[key]
            if not isinstance(name, str) or Path(name).name != name:
                raise DataError(f"{manifest_path}: shard {k} has an invalid file name {name!r}")
        out.append(dict(shard))
        start += shard["count"]
    if start != n:
        raise DataError(f"{manifest_path}: the shards hold {start} rows, the cache has {n} videos")
    return out


def _stored_layout(manifest_path: Path, manifest: dict, n: int) -> list[dict]:
    if "shards" in manifest:
        return _check_layout(manifest_path, manifest["shards"], n)
    # a cache written before shards: one frames.npy and one mask.npy
    return [{"frames": "frames.npy", "mask": "mask.npy", "start": 0, "count": n}]


def _open_shard(cache_dir: Path, shard: dict, shape: tuple[int, ...], mode: str, params: dict
                ) -> tuple[NpyRows | JpegRows, NpyRows]:
    """One shard's frames and mask files, their shapes and dtypes checked (DataError otherwise)."""
    count = shard["count"]
    frames_path, mask_path = cache_dir / shard["frames"], cache_dir / shard["mask"]
    want = {frames_path: ((count, *shape), np.uint8), mask_path: ((count, shape[0]), np.int64)}
    arrays = []
    for path, (want_shape, want_dtype) in want.items():
        if not path.is_file():
            raise DataError(f"frame cache file not found: {path}")
        try:
            if path == frames_path and params["storage"] == "jpeg":
                arr = JpegRows(path, shape[1:], params["jpeg_quality"], mode=mode)
            else:
                arr = NpyRows(path, mode=mode)
        except (DataError, OSError) as exc:
            raise DataError(f"cannot read frame cache array {path}: {exc}") from exc
        if arr.shape != want_shape or arr.dtype != want_dtype:
            raise DataError(
                f"{path} holds {arr.dtype} {arr.shape}, expected {np.dtype(want_dtype)} {want_shape}; "
                "delete the cache directory"
            )
        arrays.append(arr)
    return arrays[0], arrays[1]


def _as_rows(rows: Sequence[int] | np.ndarray, n: int, where: str) -> np.ndarray:
    """1-D int64 row numbers in range (negative ones count from the end); IndexError otherwise."""
    arr = np.asarray(rows)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"{where}: boolean index of shape {arr.shape} for {n} rows")
        return np.flatnonzero(arr)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{where}: rows must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64).ravel()
    arr = np.where(arr < 0, arr + n, arr)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise IndexError(f"{where}: row {int(np.asarray(rows).ravel()[bad][0])} is out of range for {n} rows")
    return arr


# ----------------------------------------------------------------------------- views


class RowView:
    """Read-only, array-like view of per-video rows (frames or masks) of a frame source.

    Supports ``len()``, ``shape``, ``dtype``, ``ndim``, iteration, ``np.asarray`` and indexing on
    the first axis by an int (one row), a slice, an integer array or list (rows gathered in the
    given order), a boolean mask or ``...``; further indices in a tuple apply to the result
    (``view[rows, :3]``). Integer-array and slice results are fresh arrays.

    Args:
        n_rows: number of rows.
        row_shape: shape of one row.
        dtype: dtype of the rows.
        take: maps 1-D int64 row numbers (in range) to an array (len(rows), *row_shape).
        one: returns one row.
        name: used in error messages and ``repr``.
    """

    def __init__(
        self,
        n_rows: int,
        row_shape: tuple[int, ...],
        dtype: np.dtype | type,
        take: Callable[[np.ndarray], np.ndarray],
        one: Callable[[int], np.ndarray],
        name: str,
    ) -> None:
        self._n = int(n_rows)
        self._row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self._take = take
        self._one = one
        self._name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self._row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self._row_shape)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[np.ndarray]:
        for row in range(self._n):
            yield self._one(row)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self._take(np.arange(self._n, dtype=np.int64))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            if not key or key[0] is Ellipsis or key[0] is None:
                return np.asarray(self)[key]
            first, rest = key[0], key[1:]
        else:
            first, rest = key, ()
        lead = 1  # axes of the result that index rows
        if first is Ellipsis:
            out = np.asarray(self)
        elif _is_int(first):
            row = int(first) + (self._n if first < 0 else 0)
            if not 0 <= row < self._n:
                raise IndexError(f"{self._name}: row {int(first)} is out of range for {self._n} rows")
            out, lead = self._one(row), 0
        elif isinstance(first, slice):
            out = self._take(np.arange(self._n, dtype=np.int64)[first])
        else:
            arr = np.asarray(first)
            rows = _as_rows(arr, self._n, self._name)
            out = self._take(rows)
            if arr.dtype != bool and arr.ndim != 1:
                out = out.reshape(*arr.shape, *self._row_shape)
                lead = arr.ndim
        return out[(slice(None),) * lead + rest] if rest else out

    def __repr__(self) -> str:
        return f"RowView({self._name}, shape={self.shape}, dtype={self.dtype})"


class FrameSource(Protocol):
    """What :class:`tclib.data.PairDataset` and the pipeline use of a frame source."""

    video_ids: list[str]
    params: dict
    failed: dict[str, str]
    frames: RowView
    mask: RowView

    def __len__(self) -> int: ...

    def index_of(self, video_id: str) -> int: ...

    def get(self, video_id: str) -> tuple[np.ndarray, np.ndarray]: ...

    def frames_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray: ...

    def mask_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray: ...


# ----------------------------------------------------------------------------- build


def build_frame_cache(
    videos: Mapping[str, VideoSpec],
    cache_dir: str | os.PathLike,
    max_frames: int,
    image_size: int,
    framerate: int = 1,
    slice_framepos: int = 2,
    workers: int = 1,
    shard_size: int = DEFAULT_SHARD_SIZE,
    storage: str = "raw",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> "FrameCache":
    """Decode ``videos`` into a sharded frame cache under ``cache_dir``.

    Args:
        videos: video_id -> path, or clip_id -> (path, start_time, end_time) for segments.
        cache_dir: the cache directory (created if needed).
        max_frames, image_size, framerate, slice_framepos: the sampling parameters
            (see :func:`tclib.data.read_video_frames`).
        workers: decoding processes (forked).
        shard_size: videos per shard file of a new cache; a resumed cache keeps its shards.
        storage: "raw" (uint8 arrays) or "jpeg" (each real frame a JPEG of ``jpeg_quality``;
            see data/jpegrows.py).

    Resumes an existing build with the same parameters and the same video ids; videos that
    fail to decode are logged, listed in ``failures.csv`` and left as all-padding rows.
    """
    cache_dir = Path(cache_dir)
    where = f"frame cache {cache_dir}"
    params = _sampling_params(max_frames, image_size, framerate, slice_framepos, where, storage, jpeg_quality)
    if not _is_int(shard_size) or shard_size < 1:
        raise DataError(f"{where}: shard_size must be an integer >= 1, got {shard_size!r}")
    video_ids, sources = _video_sources(videos, where)
    segments = _segments(video_ids, sources)
    n = len(video_ids)
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = cache_dir / "manifest.json"
    shape = (params["max_frames"], 3, params["image_size"], params["image_size"])

    done = np.zeros(n, dtype=bool)
    failed: dict[str, dict] = {}
    layout = _shard_layout(n, int(shard_size), storage)
    layout_shard_size = int(shard_size)
    kept: set[int] = set()  # shards whose files are reused
    if manifest_path.exists():
        manifest = _load_json(manifest_path)
        if not isinstance(manifest, dict):
            raise DataError(f"{manifest_path} must hold a JSON object")
        _check_params(manifest_path, _stored_params(manifest), params)
        stored_ids = _load_json(cache_dir / "index.json")
        if stored_ids != video_ids:
            raise DataError(
                f"frame cache {cache_dir} holds another list of videos ({len(stored_ids)} videos in "
                f"index.json, {n} given); use another cache directory or delete this one"
            )
        stored_segments = manifest.get("segments", {})
        if stored_segments != segments:
            clip = next(
                v for v in video_ids if stored_segments.get(v) != segments.get(v)
            )
            raise DataError(
                f"frame cache {cache_dir} has {clip} as segment {stored_segments.get(clip)}, "
                f"but {segments.get(clip)} was asked for; use another cache directory or delete this one"
            )
        stored = _stored_layout(manifest_path, manifest, n)
        present = [
            k for k, s in enumerate(stored)
            if (cache_dir / s["frames"]).is_file() and (cache_dir / s["mask"]).is_file()
            and (storage == "raw" or index_path(cache_dir / s["frames"]).is_file())
        ]
        if present:  # keep the stored shards; the rows of missing ones are decoded again
            layout, kept = stored, set(present)
            done = np.asarray(manifest.get("done", [0] * n), dtype=bool)
            if done.shape != (n,):
                raise DataError(f"{manifest_path}: 'done' must have {n} entries, got {done.shape}")
            failed = dict(manifest.get("failed", {}))
            for k, s in enumerate(layout):
                if k not in kept:
                    log.warning("frame cache %s: shard %s is missing, decoding its videos again",
                                cache_dir, s["frames"])
                    done[s["start"] : s["start"] + s["count"]] = False
            layout_shard_size = int(manifest.get("shard_size", layout[0]["count"]))
            if layout != _shard_layout(n, int(shard_size), storage):
                log.info("frame cache %s: keeping its %d shards (%d videos each), not shard_size=%d",
                         cache_dir, len(layout), layout_shard_size, shard_size)
    if not kept:
        write_text(cache_dir / "index.json", json.dumps(video_ids))

    starts = np.array([s["start"] for s in layout], dtype=np.int64)
    arrays: list[tuple[NpyRows | JpegRows, NpyRows]] = []
    for k, shard in enumerate(layout):
        if k in kept:
            arrays.append(_open_shard(cache_dir, shard, shape, "r+", params))
        else:
            count = shard["count"]
            if storage == "jpeg":
                frames = JpegRows.create(cache_dir / shard["frames"], (count, *shape), params["jpeg_quality"])
            else:
                frames = NpyRows.create(cache_dir / shard["frames"], (count, *shape), np.uint8)
            mask = NpyRows.create(cache_dir / shard["mask"], (count, shape[0]), np.int64)
            arrays.append((frames, mask))

    def checkpoint() -> None:
        for frames, mask in arrays:
            frames.flush()
            mask.flush()
        manifest = {
            "version": MANIFEST_VERSION,
            "params": params,
            "n_videos": n,
            "shard_size": layout_shard_size,
            "shards": layout,
            "complete": bool(int(done.sum()) + len(failed) >= n),
            "n_done": int(done.sum()),
            "done": done.astype(int).tolist(),
            "failed": failed,
            "segments": segments,
        }
        write_text(manifest_path, json.dumps(manifest))
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        writer.writerow(["video", "reason"])
        for vid, info in failed.items():
            writer.writerow([vid, info["reason"]])
        write_text(cache_dir / "failures.csv", table.getvalue())

    todo = []
    for row, (vid, source) in enumerate(zip(video_ids, sources)):
        if done[row]:
            continue
        if vid in failed and failed[vid].get("stamp") == _file_stamp(source[0]):
            continue  # failed before and the file has not changed since
        todo.append((row, source, params))
    log.info(
        "frame cache %s: %d videos in %d shards, %d to decode, %d done, %d failed earlier",
        cache_dir, n, len(layout), len(todo), int(done.sum()), len(failed),
    )

    bar = progress(total=len(todo), desc="decode frames", unit="video", disable=not todo)
    started = last = time.monotonic()
    n_frames = 0
    pool = None
    try:
        checkpoint()  # the manifest lists the shards from the start
        if workers > 1 and len(todo) > 1:
            pool = multiprocessing.get_context("fork").Pool(min(workers, len(todo)))
            results = pool.imap(_decode, todo, chunksize=1)
        else:
            results = map(_decode, todo)
        for row, padded, row_mask, reason in results:
            vid = video_ids[row]
            k = int(np.searchsorted(starts, row, side="right")) - 1
            local = row - int(starts[k])
            frames, mask = arrays[k]
            if reason is None:
                frames.write(local, padded)
                mask.write(local, row_mask)
                done[row] = True
                failed.pop(vid, None)
                n_frames += int(row_mask.sum())
            else:
                log.warning("frame cache: skipping %s: %s", vid, reason)
                frames.write(local, np.zeros(frames.row_shape, np.uint8))
                mask.write(local, np.zeros(mask.row_shape, np.int64))
                path = sources[row][0]
                failed[vid] = {"reason": reason, "path": path, "stamp": _file_stamp(path)}
            bar.update(1)
            now = time.monotonic()
            bar.set_postfix(frames_per_s=f"{n_frames / max(now - started, 1e-9):.1f}", refresh=False)
            if now - last > _CHECKPOINT_SECONDS:
                checkpoint()
                last = now
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        checkpoint()
    if failed:
        log.warning("frame cache %s: %d of %d videos failed, see failures.csv", cache_dir, len(failed), n)
    for frames, mask in arrays:
        frames.close()
        mask.close()
    arrays.clear()
    return FrameCache(cache_dir, expect=params)


# ----------------------------------------------------------------------------- cache


class FrameCache:
    """Read-only view of a frame cache directory (its shards read by rows, see data/npyrows.py).

    Args:
        cache_dir: the directory written by :func:`build_frame_cache`.
        expect: sampling parameters that must match the manifest (DataError otherwise).

    ``frames`` and ``mask`` are :class:`RowView` s over all shards: ``frames[row]`` and
    ``frames[rows]`` are fresh arrays (in the order of ``rows``), read with plain file I/O so that a
    process holds only what it read (see data/npyrows.py). Pickles by directory (DataLoader
    workers reopen the files).
    """

    def __init__(self, cache_dir: str | os.PathLike, expect: dict | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self._expect = dict(expect) if expect else None
        manifest_path = self.cache_dir / "manifest.json"
        manifest = _load_json(manifest_path)
        if not isinstance(manifest, dict) or "params" not in manifest:
            raise DataError(f"{manifest_path} has no 'params'")
        self.params: dict = _stored_params(manifest)
        if expect:
            _check_params(manifest_path, self.params, dict(expect))
        missing = [k for k in PARAM_KEYS if k not in self.params]
        if missing:
            raise DataError(f"{manifest_path} has no sampling parameter {missing[0]!r}")
        ids = _load_json(self.cache_dir / "index.json")
        if not isinstance(ids, list):
            raise DataError(f"{self.cache_dir / 'index.json'} must hold a list of video ids")
        self.video_ids: list[str] = [str(v) for v in ids]
        self._row = {v: i for i, v in enumerate(self.video_ids)}
        n = len(self.video_ids)
        self.done = np.asarray(manifest.get("done", [0] * n), dtype=bool)
        if self.done.shape != (n,):
            raise DataError(
                f"frame cache {self.cache_dir} is inconsistent: {n} ids in index.json, "
                f"{self.done.size} done flags in manifest.json"
            )
        failed = manifest.get("failed", {})
        self.failed: dict[str, str] = {v: info.get("reason", "") for v, info in failed.items()}
        self.segments: dict[str, list[int]] = dict(manifest.get("segments", {}))
        self.shards: list[dict] = _stored_layout(manifest_path, manifest, n)
        p = self.params
        shape = (int(p["max_frames"]), 3, int(p["image_size"]), int(p["image_size"]))
        self._arrays = [_open_shard(self.cache_dir, s, shape, "r", self.params) for s in self.shards]
        self._starts = np.array([s["start"] for s in self.shards], dtype=np.int64)
        self.frames = RowView(n, shape, np.uint8, lambda rows: self._take(rows, 0),
                              lambda row: self._one(row, 0), f"frames of {self.cache_dir}")
        self.mask = RowView(n, shape[:1], np.int64, lambda rows: self._take(rows, 1),
                            lambda row: self._one(row, 1), f"mask of {self.cache_dir}")
        if not self.complete:
            log.warning(
                "frame cache %s is incomplete: %d of %d videos decoded",
                self.cache_dir, int(self.done.sum()), n,
            )

    def _one(self, row: int, which: int) -> np.ndarray:
        k = int(np.searchsorted(self._starts, row, side="right")) - 1
        return self._arrays[k][which].read(np.array([row - int(self._starts[k])]))[0]

    def _take(self, rows: np.ndarray, which: int) -> np.ndarray:
        first = self._arrays[0][which]
        out = np.empty((len(rows), *first.row_shape), dtype=first.dtype)
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
        return all(d or v in self.failed for v, d in zip(self.video_ids, self.done))

    def __len__(self) -> int:
        return len(self.video_ids)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._row and bool(self.done[self._row[video_id]])

    def index_of(self, video_id: str) -> int:
        """Row of ``video_id``; DataError if it is not in the cache, failed, or not decoded yet."""
        row = self._row.get(video_id)
        if row is None:
            raise DataError(f"video {video_id} is not in the frame cache {self.cache_dir}")
        if video_id in self.failed:
            raise DataError(
                f"video {video_id} failed to decode when the frame cache {self.cache_dir} was built: "
                f"{self.failed[video_id]}"
            )
        if not self.done[row]:
            raise DataError(f"video {video_id} is not decoded yet in the frame cache {self.cache_dir}")
        return row

    def get(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(frames uint8 (F, 3, S, S), mask int64 (F,)) of one video, read now."""
        row = self.index_of(video_id)
        return self._one(row, 0), self._one(row, 1)

    def frames_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 (len(rows), F, 3, S, S) gathered across shards, in the order of ``rows``."""
        return self._take(_as_rows(rows, len(self), f"frames of {self.cache_dir}"), 0)

    def mask_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """int64 (len(rows), F), in the order of ``rows``."""
        return self._take(_as_rows(rows, len(self), f"mask of {self.cache_dir}"), 1)

    # open files must not be pickled (DataLoader workers): reopen from the directory
    def __getstate__(self) -> dict:
        return {"cache_dir": str(self.cache_dir), "expect": self._expect}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["cache_dir"], expect=state["expect"])

    def __repr__(self) -> str:
        return (
            f"FrameCache({str(self.cache_dir)!r}, videos={len(self)}, shards={len(self.shards)}, "
            f"params={self.params})"
        )


# ----------------------------------------------------------------------------- on the fly


def _decode_or_raise(task: tuple[_Source, dict]) -> tuple[np.ndarray, np.ndarray]:
    (path, start, end), params = task
    frames = read_video_frames(
        path,
        params["max_frames"],
        params["image_size"],
        framerate=params["framerate"],
        slice_framepos=params["slice_framepos"],
        start_time=start,
        end_time=end,
    )
    return pad_frames(frames, params["max_frames"])


class DecodedFrames:
    """A frame source that decodes videos when they are read, with no cache on disk.

    Same frames as :func:`build_frame_cache` with the same parameters (``read_video_frames``
    then ``pad_frames``) and the same interface as :class:`FrameCache`. Every read decodes
    again; a missing or corrupt video raises :class:`DataError` naming the file when it is read.

    Args:
        videos: video_id -> path, or clip_id -> (path, start_time, end_time) for segments.
        max_frames, image_size, framerate, slice_framepos: the sampling parameters.
        workers: processes (forked) that :meth:`frames_of` uses for many rows at once.

    ``mask[rows]`` / :meth:`mask_of` read only each container's frame count and rate (no
    decoding), which fixes how many frames :func:`read_video_frames` returns.
    """

    def __init__(
        self,
        videos: Mapping[str, VideoSpec],
        max_frames: int,
        image_size: int,
        framerate: int = 1,
        slice_framepos: int = 2,
        workers: int = 1,
    ) -> None:
        self.params: dict = _sampling_params(
            max_frames, image_size, framerate, slice_framepos, "on-the-fly frames"
        )
        self.video_ids, self._sources = _video_sources(videos, "on-the-fly frames")
        self.segments: dict[str, list[int]] = _segments(self.video_ids, self._sources)
        self.workers = int(workers)
        self._row = {v: i for i, v in enumerate(self.video_ids)}
        if len(self._row) != len(self.video_ids):
            raise DataError("on-the-fly frames: video ids are not unique")
        self.failed: dict[str, str] = {}
        missing = [p for p, _, _ in self._sources if not os.path.isfile(p)]
        if missing:
            log.warning(
                "on-the-fly frames: %d of %d video files are missing (reading them will fail), e.g. %s",
                len(missing), len(self._sources), missing[0],
            )
        self._make_views()

    def _make_views(self) -> None:
        p = self.params
        shape = (p["max_frames"], 3, p["image_size"], p["image_size"])
        n = len(self.video_ids)
        self.frames = RowView(n, shape, np.uint8, self._take_frames,
                              lambda row: self._decode_row(row)[0], "on-the-fly frames")
        self.mask = RowView(n, shape[:1], np.int64, self._take_mask,
                            lambda row: self._mask_row(row), "on-the-fly mask")

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
        return _decode_or_raise((self._sources[row], self.params))

    def _mask_row(self, row: int) -> np.ndarray:
        path, start, end = self._sources[row]
        p = self.params
        count = sampled_frame_count(
            path, p["max_frames"], framerate=p["framerate"], slice_framepos=p["slice_framepos"],
            start_time=start, end_time=end,
        )
        mask = np.zeros(p["max_frames"], dtype=np.int64)
        mask[:count] = 1
        return mask

    def get(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(frames uint8 (F, 3, S, S), mask int64 (F,)) of one video, decoded now."""
        return self._decode_row(self.index_of(video_id))

    def _take_frames(self, rows: np.ndarray) -> np.ndarray:
        p = self.params
        out = np.empty((len(rows), p["max_frames"], 3, p["image_size"], p["image_size"]), dtype=np.uint8)
        tasks = [(self._sources[int(r)], p) for r in rows]
        pool = None
        bar = progress(total=len(rows), desc="decode frames", unit="video", disable=len(rows) < _BAR_MIN_ROWS)
        started = time.monotonic()
        n_frames = 0
        try:
            if self.workers > 1 and len(rows) > 1:
                pool = multiprocessing.get_context("fork").Pool(min(self.workers, len(rows)))
                results = pool.imap(_decode_or_raise, tasks, chunksize=1)
            else:
                results = map(_decode_or_raise, tasks)
            for i, (frames, mask) in enumerate(results):
                out[i] = frames
                n_frames += int(mask.sum())
                bar.update(1)
                bar.set_postfix(frames_per_s=f"{n_frames / max(time.monotonic() - started, 1e-9):.1f}",
                                refresh=False)
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()
        return out

    def _take_mask(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), self.params["max_frames"]), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i] = self._mask_row(int(r))
        return out

    def frames_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 (len(rows), F, 3, S, S), decoded now, in the order of ``rows``."""
        return self._take_frames(_as_rows(rows, len(self), "on-the-fly frames"))

    def mask_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """int64 (len(rows), F), in the order of ``rows``."""
        return self._take_mask(_as_rows(rows, len(self), "on-the-fly mask"))

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
