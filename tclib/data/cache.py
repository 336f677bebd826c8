"""A frame cache: every video is decoded once into fixed-size uint8 arrays on disk.

Layout of a cache directory::

    frames.npy      uint8 (N, max_frames, 3, S, S), zero-padded (a .npy memory map)
    mask.npy        int64 (N, max_frames): 1 for real frames, 0 for padding
    index.json      the video ids, in row order
    manifest.json   sampling parameters, number of videos, per-row done flags, failures
    failures.csv    video, reason: videos that could not be decoded

The manifest is rewritten every few seconds during a build and when the build stops for any
reason, so an interrupted build resumes where it was and never decodes a finished video again.
A cache built with other sampling parameters is never rebuilt silently: asking for different
parameters raises :class:`DataError` naming the parameter. Videos that failed are retried on the
next build only if their file changed (size or modification time) or appeared.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tclib.data.frames import pad_frames, read_video_frames
from tclib.errors import DataError

__all__ = ["FrameCache", "build_frame_cache", "PARAM_KEYS"]

log = logging.getLogger(__name__)

PARAM_KEYS: tuple[str, ...] = ("max_frames", "image_size", "framerate", "slice_framepos")
MANIFEST_VERSION = 1
_CHECKPOINT_SECONDS = 5.0


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _file_stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"frame cache file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid JSON in {path}: {exc}") from exc


def _check_params(manifest_path: Path, stored: dict, wanted: dict) -> None:
    for key, value in wanted.items():
        if key not in stored:
            raise DataError(f"{manifest_path} has no sampling parameter {key!r}")
        if stored[key] != value:
            raise DataError(
                f"frame cache {manifest_path.parent} was built with {key}={stored[key]!r}, "
                f"but {key}={value!r} was asked for; use another cache directory or delete this one"
            )


def _decode(task: tuple[int, str, dict]) -> tuple[int, np.ndarray | None, np.ndarray | None, str | None]:
    """Decode one video; a DataError becomes a failure reason instead of an exception."""
    row, path, params = task
    try:
        frames = read_video_frames(
            path,
            params["max_frames"],
            params["image_size"],
            framerate=params["framerate"],
            slice_framepos=params["slice_framepos"],
        )
    except DataError as exc:
        return row, None, None, str(exc)
    padded, mask = pad_frames(frames, params["max_frames"])
    return row, padded, mask, None


def build_frame_cache(
    videos: dict[str, str],
    cache_dir: str | os.PathLike,
    max_frames: int,
    image_size: int,
    framerate: int = 1,
    slice_framepos: int = 2,
    workers: int = 1,
) -> "FrameCache":
    """Decode ``videos`` (video_id -> path) into a frame cache under ``cache_dir``.

    Resumes an existing build with the same parameters and the same video ids; videos that
    fail to decode are logged, listed in ``failures.csv`` and left as all-padding rows.
    """
    params = {
        "max_frames": int(max_frames),
        "image_size": int(image_size),
        "framerate": int(framerate),
        "slice_framepos": int(slice_framepos),
    }
    video_ids = [str(v) for v in videos]
    if not video_ids:
        raise DataError(f"no videos given for the frame cache at {cache_dir}")
    paths = [str(videos[v]) for v in videos]
    n = len(video_ids)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = cache_dir / "manifest.json"
    frames_path, mask_path = cache_dir / "frames.npy", cache_dir / "mask.npy"
    shape = (n, params["max_frames"], 3, params["image_size"], params["image_size"])

    done = np.zeros(n, dtype=bool)
    failed: dict[str, dict] = {}
    fresh = True
    if manifest_path.exists():
        manifest = _load_json(manifest_path)
        _check_params(manifest_path, manifest.get("params", {}), params)
        stored_ids = _load_json(cache_dir / "index.json")
        if stored_ids != video_ids:
            raise DataError(
                f"frame cache {cache_dir} holds another list of videos ({len(stored_ids)} videos in "
                f"index.json, {n} given); use another cache directory or delete this one"
            )
        if frames_path.exists() and mask_path.exists():
            done = np.asarray(manifest.get("done", [False] * n), dtype=bool)
            failed = dict(manifest.get("failed", {}))
            fresh = False
    if fresh:
        frames = np.lib.format.open_memmap(frames_path, mode="w+", dtype=np.uint8, shape=shape)
        mask = np.lib.format.open_memmap(mask_path, mode="w+", dtype=np.int64, shape=shape[:2])
        _atomic_write(cache_dir / "index.json", json.dumps(video_ids))
    else:
        frames = np.lib.format.open_memmap(frames_path, mode="r+")
        mask = np.lib.format.open_memmap(mask_path, mode="r+")
        if frames.shape != shape or frames.dtype != np.uint8 or mask.shape != shape[:2]:
            raise DataError(
                f"{frames_path} has shape {frames.shape}, expected {shape}; delete the cache directory"
            )

    def checkpoint() -> None:
        frames.flush()
        mask.flush()
        manifest = {
            "version": MANIFEST_VERSION,
            "params": params,
            "n_videos": n,
            "complete": bool(int(done.sum()) + len(failed) >= n),
            "n_done": int(done.sum()),
            "done": done.astype(int).tolist(),
            "failed": failed,
        }
        _atomic_write(manifest_path, json.dumps(manifest))
        with open(cache_dir / "failures.csv.tmp", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["video", "reason"])
            for vid, info in failed.items():
                writer.writerow([vid, info["reason"]])
        os.replace(cache_dir / "failures.csv.tmp", cache_dir / "failures.csv")

    todo = []
    for row, (vid, path) in enumerate(zip(video_ids, paths)):
        if done[row]:
            continue
        if vid in failed and failed[vid].get("stamp") == _file_stamp(path):
            continue  # failed before and the file has not changed since
        todo.append((row, path, params))
    log.info(
        "frame cache %s: %d videos, %d to decode, %d done, %d failed earlier",
        cache_dir, n, len(todo), int(done.sum()), len(failed),
    )

    bar = tqdm(total=len(todo), desc="decode frames", unit="video")
    last = time.monotonic()
    pool = None
    try:
        if workers > 1 and len(todo) > 1:
            pool = multiprocessing.get_context("fork").Pool(min(workers, len(todo)))
            results = pool.imap(_decode, todo, chunksize=1)
        else:
            results = map(_decode, todo)
        for row, padded, row_mask, reason in results:
            vid = video_ids[row]
            if reason is None:
                frames[row] = padded
                mask[row] = row_mask
                done[row] = True
                failed.pop(vid, None)
            else:
                log.warning("frame cache: skipping %s: %s", vid, reason)
                frames[row] = 0
                mask[row] = 0
                failed[vid] = {"reason": reason, "path": paths[row], "stamp": _file_stamp(paths[row])}
            bar.update(1)
            if time.monotonic() - last > _CHECKPOINT_SECONDS:
                checkpoint()
                last = time.monotonic()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        checkpoint()
    if failed:
        log.warning("frame cache %s: %d of %d videos failed, see failures.csv", cache_dir, len(failed), n)
    del frames, mask
    return FrameCache(cache_dir, expect=params)


class FrameCache:
    """Read-only view of a frame cache directory (memory-mapped).

    Args:
        cache_dir: the directory written by :func:`build_frame_cache`.
        expect: sampling parameters that must match the manifest (DataError otherwise).
    """

    def __init__(self, cache_dir: str | os.PathLike, expect: dict | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self._expect = dict(expect) if expect else None
        manifest_path = self.cache_dir / "manifest.json"
        manifest = _load_json(manifest_path)
        if not isinstance(manifest, dict) or "params" not in manifest:
            raise DataError(f"{manifest_path} has no 'params'")
        self.params: dict = dict(manifest["params"])
        if expect:
            _check_params(manifest_path, self.params, dict(expect))
        ids = _load_json(self.cache_dir / "index.json")
        if not isinstance(ids, list):
            raise DataError(f"{self.cache_dir / 'index.json'} must hold a list of video ids")
        self.video_ids: list[str] = [str(v) for v in ids]
        self._row = {v: i for i, v in enumerate(self.video_ids)}
        self.done = np.asarray(manifest.get("done", [0] * len(ids)), dtype=bool)
        failed = manifest.get("failed", {})
        self.failed: dict[str, str] = {v: info.get("reason", "") for v, info in failed.items()}
        for name in ("frames.npy", "mask.npy"):
            if not (self.cache_dir / name).is_file():
                raise DataError(f"frame cache file not found: {self.cache_dir / name}")
        try:
            self.frames: np.ndarray = np.load(self.cache_dir / "frames.npy", mmap_mode="r")
            self.mask: np.ndarray = np.load(self.cache_dir / "mask.npy", mmap_mode="r")
        except ValueError as exc:
            raise DataError(f"cannot read frame cache arrays in {self.cache_dir}: {exc}") from exc
        n = len(self.video_ids)
        if self.frames.shape[0] != n or self.mask.shape[:1] != (n,) or len(self.done) != n:
            raise DataError(
                f"frame cache {self.cache_dir} is inconsistent: {n} ids, frames {self.frames.shape}, "
                f"mask {self.mask.shape}, {len(self.done)} done flags"
            )
        if not self.complete:
            log.warning(
                "frame cache %s is incomplete: %d of %d videos decoded",
                self.cache_dir, int(self.done.sum()), n,
            )

    @property
    def complete(self) -> bool:
        """True when every video was either decoded or recorded as failed."""
        return all(d or v in self.failed for v, d in zip(self.video_ids, self.done))

    def __len__(self) -> int:
        return len(self.video_ids)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._row and self.done[self._row[video_id]]

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
        """(frames uint8 (F, 3, S, S), mask int64 (F,)) of one video (views on the memory map)."""
        row = self.index_of(video_id)
        return self.frames[row], self.mask[row]

    # memory maps must not be pickled by value (DataLoader workers): reopen from the directory
    def __getstate__(self) -> dict:
        return {"cache_dir": str(self.cache_dir), "expect": self._expect}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["cache_dir"], expect=state["expect"])

    def __repr__(self) -> str:
        return f"FrameCache({str(self.cache_dir)!r}, videos={len(self)}, params={self.params})"
