"""Building a frame cache (the layout is in tclib.data.framecache): every video decoded once, in worker
processes, into its row of a shard.

The manifest is rewritten every few seconds during a build and when the build stops for any
reason, so an interrupted build resumes where it was and never decodes a finished video again;
a shard file that went missing is written again, the others are kept. A cache built with other
sampling parameters is never rebuilt silently: asking for different parameters raises
:class:`DataError` naming the parameter. Videos that failed are retried on the next build only if
their file changed (its content signature) or appeared.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..files import content_signature, write_text
from .framecache import (
    DEFAULT_JPEG_QUALITY,
    DEFAULT_SHARD_SIZE,
    MANIFEST_VERSION,
    FrameCache,
    Source,
    VideoSpec,
    cache_params,
    check_params,
    open_shard,
    read_index,
    read_manifest,
    segments_of,
    shard_layout,
    stored_layout,
    stored_params,
    video_sources,
)
from .frames import Sampling, read_padded_frames
from .jpegrows import JpegRows, encode_frames, index_path
from .npyrows import NpyRows
from .pool import parallel_map
from .rows import is_int

__all__ = ["build_frame_cache"]

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 5.0


def build_frame_cache(videos: Mapping[str, VideoSpec], cache_dir: str | os.PathLike, sampling: Sampling,
                      workers: int = 1, shard_size: int = DEFAULT_SHARD_SIZE, storage: str = "raw",
                      jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> FrameCache:
    """Decode ``videos`` into a sharded frame cache under ``cache_dir``.

    Args:
        videos: video_id -> path, or clip_id -> (path, start_time, end_time) for segments.
        cache_dir: the cache directory (created if needed).
        sampling: which frames, at what size (see :func:`tclib.data.read_video_frames`).
        workers: decoding processes (forked).
        shard_size: videos per shard file of a new cache; a resumed cache keeps its shards.
        storage: "raw" (uint8 arrays) or "jpeg" (each real frame a JPEG of ``jpeg_quality``;
            see data/jpegrows.py).

    Resumes an existing build with the same parameters and the same video ids; videos that
    fail to decode are logged, listed in ``failures.csv`` and left as all-padding rows.
    """
    cache_dir = Path(cache_dir)
    where = f"frame cache {cache_dir}"
    params = cache_params(sampling, storage, jpeg_quality, where)
    if not is_int(shard_size) or shard_size < 1:
        raise DataError(f"{where}: shard_size must be an integer >= 1, got {shard_size!r}")
    build = CacheBuild(cache_dir, params, sampling, *video_sources(videos, where), int(shard_size))
    build.run(workers)
    return FrameCache(cache_dir, expect=params)


def decode(task: tuple[int, Source, Sampling, dict]) -> tuple[int, Any, np.ndarray | None, str | None]:
    """Decode one video (row, frames, mask, None), or its failure (row, None, None, reason); a JPEG
    cache's frames are encoded here, in the decoding process."""
    row, (path, start, end), sampling, params = task
    try:
        padded, mask = read_padded_frames(path, sampling, start, end)
    except DataError as exc:
        return row, None, None, str(exc)
    if params["storage"] == "jpeg":
        return row, encode_frames(padded, params["jpeg_quality"]), mask, None
    return row, padded, mask, None


class CacheBuild:
    """One build of a frame cache: the layout, which rows are done or failed, and the shard files."""

    def __init__(self, cache_dir: Path, params: dict, sampling: Sampling, ids: list[str], sources: list[Source],
                 shard_size: int) -> None:
        self.cache_dir, self.params, self.sampling = cache_dir, params, sampling
        self.ids, self.sources = ids, sources
        self.segments = segments_of(ids, sources)
        n = len(ids)
        self.layout, self.shard_size, kept = shard_layout(n, shard_size, params["storage"]), shard_size, set()
        self.done = np.zeros(n, dtype=bool)
        self.failed: dict[str, dict[str, Any]] = {}  # video id -> reason, path, signature
        cache_dir.mkdir(parents=True, exist_ok=True)
        if (cache_dir / "manifest.json").exists():
            kept = self.resume(shard_size)
        if not kept:
            write_text(cache_dir / "index.json", json.dumps(ids))
        self.starts = np.array([s["start"] for s in self.layout], dtype=np.int64)
        self.arrays = [self.open(k, shard, k in kept) for k, shard in enumerate(self.layout)]

    def resume(self, shard_size: int) -> set[int]:
        """Take over the state of the cache already there (the same parameters, videos and segments, or a
        DataError naming what differs); returns the shards whose files are kept."""
        manifest_path = self.cache_dir / "manifest.json"
        manifest = read_manifest(self.cache_dir)
        check_params(manifest_path, stored_params(manifest), self.params)
        stored_ids = read_index(self.cache_dir)
        if stored_ids != self.ids:
            raise DataError(f"frame cache {self.cache_dir} holds another list of videos ({len(stored_ids)} videos in "
                            f"index.json, {len(self.ids)} given); use another cache directory or delete this one")
        stored_segments = manifest.get("segments", {})
        if stored_segments != self.segments:
            clip = next(v for v in self.ids if stored_segments.get(v) != self.segments.get(v))
            raise DataError(f"frame cache {self.cache_dir} has {clip} as segment {stored_segments.get(clip)}, "
                            f"but {self.segments.get(clip)} was asked for; use another cache directory or delete this one")
        stored = stored_layout(manifest_path, manifest, len(self.ids))
        kept = {k for k, s in enumerate(stored) if self.shard_files_exist(s)}
        if not kept:  # nothing to keep: a new layout
            return kept
        self.layout, self.shard_size = stored, int(manifest.get("shard_size", stored[0]["count"]))
        self.done = np.asarray(manifest.get("done", [0] * len(self.ids)), dtype=bool)
        if self.done.shape != (len(self.ids),):
            raise DataError(f"{manifest_path}: 'done' must have {len(self.ids)} entries, got {self.done.shape}")
        self.failed = dict(manifest.get("failed", {}))
        for k, s in enumerate(self.layout):
            if k not in kept:
                log.warning("frame cache %s: shard %s is missing, decoding its videos again", self.cache_dir, s["frames"])
                self.done[s["start"]: s["start"] + s["count"]] = False
        if self.layout != shard_layout(len(self.ids), shard_size, self.params["storage"]):
            log.info("frame cache %s: keeping its %d shards (%d videos each), not shard_size=%d",
                     self.cache_dir, len(self.layout), self.shard_size, shard_size)
        return kept

    def shard_files_exist(self, shard: dict) -> bool:
        frames = self.cache_dir / shard["frames"]
        return (frames.is_file() and (self.cache_dir / shard["mask"]).is_file()
                and (self.params["storage"] == "raw" or index_path(frames).is_file()))

    def open(self, k: int, shard: dict, kept: bool) -> tuple[NpyRows | JpegRows, NpyRows]:
        """A shard's frames and mask files: the kept ones opened for writing, others created."""
        if kept:
            return open_shard(self.cache_dir, shard, self.sampling, "r+", self.params)
        shape = (shard["count"], self.sampling.max_frames, 3, self.sampling.image_size, self.sampling.image_size)
        frames: NpyRows | JpegRows
        if self.params["storage"] == "jpeg":
            frames = JpegRows.create(self.cache_dir / shard["frames"], shape, self.params["jpeg_quality"])
        else:
            frames = NpyRows.create(self.cache_dir / shard["frames"], shape, np.uint8)
        return frames, NpyRows.create(self.cache_dir / shard["mask"], shape[:2], np.int64)

    def todo(self) -> list[tuple[int, Source, Sampling, dict]]:
        """The rows to decode: neither done nor failed on a file that has not changed since."""
        tasks = []
        for row, (vid, source) in enumerate(zip(self.ids, self.sources, strict=True)):
            failed_before = vid in self.failed and self.failed[vid].get("signature") == content_signature(source[0])
            if not self.done[row] and not failed_before:
                tasks.append((row, source, self.sampling, self.params))
        return tasks

    def run(self, workers: int) -> None:
        """Decode what is left, writing each video into its row and the manifest every few seconds."""
        todo = self.todo()
        log.info("frame cache %s: %d videos in %d shards, %d to decode, %d done, %d failed earlier",
                 self.cache_dir, len(self.ids), len(self.layout), len(todo), int(self.done.sum()), len(self.failed))
        last = time.monotonic()
        try:
            self.checkpoint()  # the manifest lists the shards from the start
            for result in parallel_map(decode, todo, workers, "decode frames",
                                       frames_of=lambda r: 0 if r[2] is None else int(r[2].sum())):
                self.write(*result)
                if time.monotonic() - last > CHECKPOINT_SECONDS:
                    self.checkpoint()
                    last = time.monotonic()
        finally:
            self.checkpoint()
            self.close()
        if self.failed:
            log.warning("frame cache %s: %d of %d videos failed, see failures.csv", self.cache_dir, len(self.failed),
                        len(self.ids))

    def write(self, row: int, frames: Any, mask: np.ndarray | None, reason: str | None) -> None:
        """One decoded video into its row, or its failure (an all-padding row, and the reason)."""
        vid = self.ids[row]
        k = int(np.searchsorted(self.starts, row, side="right")) - 1
        local = row - int(self.starts[k])
        frame_rows, mask_rows = self.arrays[k]
        if reason is None:
            assert mask is not None  # decode() gives a mask with every decoded video
            frame_rows.write(local, frames)
            mask_rows.write(local, mask)
            self.done[row] = True
            self.failed.pop(vid, None)
            return
        log.warning("frame cache: skipping %s: %s", vid, reason)
        frame_rows.write(local, np.zeros(frame_rows.row_shape, np.uint8))
        mask_rows.write(local, np.zeros(mask_rows.row_shape, np.int64))
        path = self.sources[row][0]
        self.failed[vid] = {"reason": reason, "path": path, "signature": content_signature(path)}

    def checkpoint(self) -> None:
        """Flush the shards, then write the manifest and failures.csv (each atomically)."""
        for frames, mask in self.arrays:
            frames.flush()
            mask.flush()
        n = len(self.ids)
        manifest = {"version": MANIFEST_VERSION, "params": self.params, "n_videos": n, "shard_size": self.shard_size,
                    "shards": self.layout, "complete": bool(int(self.done.sum()) + len(self.failed) >= n),
                    "n_done": int(self.done.sum()), "done": self.done.astype(int).tolist(), "failed": self.failed,
                    "segments": self.segments}
        write_text(self.cache_dir / "manifest.json", json.dumps(manifest))
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        writer.writerow(["video", "reason"])
        for vid, info in self.failed.items():
            writer.writerow([vid, info["reason"]])
        write_text(self.cache_dir / "failures.csv", table.getvalue())

    def close(self) -> None:
        for frames, mask in self.arrays:
            frames.close()
            mask.close()
        self.arrays = []
