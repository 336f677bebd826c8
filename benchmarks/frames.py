"""Frames per second of training input: decoding on the fly against reading the frame cache.

Both sources serve the same videos through a PairDataset and a DataLoader (one caption per video,
in order), so the pass is what a training epoch reads: item by item for both, and, from the cache,
a whole batch at a time as training reads it; an in-memory copy of the same bytes is the floor. Building the cache is a one-off cost and is
reported separately. The figures are measured in this one run and written to
``results/benchmarks/frames.md`` and ``frames.json``.

By default the script writes its own synthetic set (MSR-VTT layout, ``--size`` px square frames,
240 px being MSR-VTT's frame height) into ``--work-dir`` or a temporary folder; ``--data-root``
takes an existing MSR-VTT-layout set instead (its first ``--videos`` videos).

    .venv/bin/python benchmarks/frames.py [--videos 120] [--image-size 224] [--max-frames 12] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler
from tqdm import tqdm

from tclib.data import PairDataset, build_frame_cache, read_msrvtt, write_synthetic_msrvtt
from tclib.data.dataset import BatchReads
from tclib.data.cache import DecodedFrames, FrameSource
from tclib.errors import DataError

log = logging.getLogger("benchmarks.frames")
ROOT = Path(__file__).resolve().parent.parent


def existing_videos(root: Path, n: int) -> dict[str, str]:
    """The first ``n`` videos of an MSR-VTT-layout set (train split, then test split)."""
    videos: dict[str, str] = {}
    for split in ("train", "test"):
        try:
            table = read_msrvtt(root, split)
        except DataError as exc:
            log.warning("skipping the %s split of %s: %s", split, root, exc)
            continue
        videos.update(zip(table.video_id, table.video_path))
    missing = [v for v, p in videos.items() if not os.path.isfile(p)]
    videos = {v: p for v, p in videos.items() if os.path.isfile(p)}
    if missing:
        log.warning("%d videos of %s are missing on disk and left out", len(missing), root)
    if len(videos) < n:
        raise DataError(f"{root} has {len(videos)} videos on disk, {n} asked for (--videos)")
    return dict(list(videos.items())[:n])


def synthetic_videos(root: Path, n: int, size: int, fps: int, workers: int) -> dict[str, str]:
    write_synthetic_msrvtt(root, n_train=n, n_test=0, size=size, fps=fps, workers=workers)
    return {f"video{i}": str(root / "videos" / f"video{i}.mp4") for i in range(n)}


def one_pass(source: FrameSource, video_ids: list[str], batch_size: int, workers: int, desc: str) -> dict[str, float]:
    """Read each video once through PairDataset + DataLoader; seconds, frames and a checksum."""
    dataset = PairDataset([f"caption of {v}" for v in video_ids], video_ids, source,
                          lambda texts: torch.zeros(len(texts), 1, dtype=torch.long))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    frames = videos = checksum = 0
    bar = tqdm(total=len(dataset), desc=desc, unit="video")
    start = time.perf_counter()
    checking = 0.0  # the checksum's own time, not counted
    for batch in loader:
        n_real = int(batch["frame_mask"].sum())
        frames += n_real
        videos += len(batch["frames"])
        tick = time.perf_counter()
        checksum += int(batch["frames"].sum(dtype=torch.int64))
        checking += time.perf_counter() - tick
        bar.update(len(batch["frames"]))
        bar.set_postfix(frames_per_s=f"{frames / (time.perf_counter() - start):.0f}", refresh=False)
    seconds = time.perf_counter() - start - checking
    bar.close()
    return {"seconds": seconds, "videos": videos, "frames": frames, "videos_per_s": videos / seconds,
            "frames_per_s": frames / seconds, "checksum": checksum}


class InMemoryBatches(torch.utils.data.Dataset):
    """The floor for batch reads: the same frames already in memory, each batch copied out of them."""

    def __init__(self, frames: np.ndarray, mask: np.ndarray) -> None:
        self.frames, self.mask = frames, mask

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, indices: list[int]) -> dict:
        return {"frames": torch.from_numpy(self.frames[indices]), "frame_mask": torch.from_numpy(self.mask[indices])}


def batch_pass(dataset, batch_size: int, workers: int) -> dict[str, float]:
    """Whole batches through a DataLoader (batch_size=None, a BatchSampler), as training reads a
    cache. Timed from the first batch on: the workers' start-up is reported apart."""
    batches = BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last=False)
    loader = DataLoader(dataset, batch_size=None, sampler=batches, num_workers=workers)
    frames = videos = checksum = 0
    checking = 0.0  # the checksum's own time, not counted
    start = time.perf_counter()
    first = None
    for batch in loader:
        if first is None:
            first = time.perf_counter()
            first_frames, first_videos = int(batch["frame_mask"].sum()), len(batch["frames"])
        frames += int(batch["frame_mask"].sum())
        videos += len(batch["frames"])
        tick = time.perf_counter()
        checksum += int(batch["frames"].sum(dtype=torch.int64))
        checking += time.perf_counter() - tick
    seconds = time.perf_counter() - first - checking
    steady_frames, steady_videos = frames - first_frames, videos - first_videos
    return {"seconds": seconds, "startup_seconds": first - start, "videos": videos, "frames": frames,
            "videos_per_s": steady_videos / seconds, "frames_per_s": steady_frames / seconds, "checksum": checksum}


def cache_batches(cache, video_ids: list[str]) -> BatchReads:
    return BatchReads(PairDataset([f"caption of {v}" for v in video_ids], video_ids, cache,
                                  lambda texts: torch.zeros(len(texts), 1, dtype=torch.long)))


def in_memory_batches(cache, video_ids: list[str]) -> InMemoryBatches:
    rows = np.array([cache.index_of(v) for v in video_ids])
    return InMemoryBatches(cache.frames_of(rows), cache.mask_of(rows))


def markdown(report: dict) -> str:
    a = report["args"]
    fly, cache = report["on_the_fly"], report["cache"]
    batched, copied = report["cache_batches"], report["in_memory_copy"]
    lines = [
        "# Frames per second: decoding on the fly vs the frame cache",
        "",
        f"Command: `{report['command']}`",
        "",
        f"{report['n_videos']} videos ({report['data']}), max_frames={a['max_frames']}, "
        f"image_size={a['image_size']}, batch {a['batch_size']}, {a['workers']} DataLoader workers "
        f"(and {a['workers']} decoding processes for the cache build), {report['cpus']} CPUs, "
        f"{report['platform']}.",
        "",
        "| source | one-off build s | pass s | videos/s | frames/s |",
        "|---|---:|---:|---:|---:|",
        f"| decoded on the fly | - | {fly['seconds']:.2f} | {fly['videos_per_s']:.1f} | {fly['frames_per_s']:.0f} |",
        f"| frame cache, item by item, {report['shards']} shard(s) | {report['build_seconds']:.2f} | "
        f"{cache['seconds']:.2f} | {cache['videos_per_s']:.1f} | {cache['frames_per_s']:.0f} |",
        f"| frame cache, batch reads (training), after the first batch | - | {batched['seconds']:.3f} | "
        f"{batched['videos_per_s']:.1f} | {batched['frames_per_s']:.0f} |",
        f"| the same frames in memory, batches copied out, after the first batch | - | {copied['seconds']:.3f} | "
        f"{copied['videos_per_s']:.1f} | {copied['frames_per_s']:.0f} |",
        "",
        f"Batch reads from the cache / on the fly: **x{report['batch_ratio']:.1f}** frames/s; batch reads / "
        f"an in-memory copy: **{100 * report['copy_share']:.0f}%**. "
        f"Item-by-item reads from the cache / on the fly: x{report['ratio']:.1f}. "
        f"The build pays for itself after {report['break_even_passes']:.1f} passes. "
        f"Same frames from both sources: {'yes' if report['identical'] else 'NO'}.",
        "",
        "The passes read files that the cache build has just read or written, so they are served from the",
        "OS page cache where memory allows. The item-by-item passes include starting the DataLoader",
        f"workers; the batch passes count from their first batch on (the workers started in "
        f"{batched['startup_seconds']:.2f} s), as in a training epoch, where start-up is paid once; both run",
        "through the same DataLoader and workers. Checksums of the frames (to compare the sources) are not timed.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=120, help="number of videos")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--max-frames", type=int, default=12)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="DataLoader workers for both passes and decoding processes for the cache build")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data-root", type=Path, default=None,
                        help="an existing MSR-VTT-layout set (default: write a synthetic one)")
    parser.add_argument("--size", type=int, default=240, help="synthetic frame size in px (square)")
    parser.add_argument("--fps", type=int, default=2, help="synthetic frame rate")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the synthetic set and the cache go (default: a temporary folder, removed)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="tclib-frames-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.data_root is not None:
            videos = existing_videos(args.data_root, args.videos)
            data = f"from {args.data_root}"
        else:
            start = time.perf_counter()
            videos = synthetic_videos(work / "data", args.videos, args.size, args.fps, args.workers)
            data = (f"synthetic, {args.size}x{args.size} px at {args.fps} fps, "
                    f"written in {time.perf_counter() - start:.1f} s")
        params = dict(max_frames=args.max_frames, image_size=args.image_size, framerate=1, slice_framepos=2)
        cache_dir = work / "cache"
        if cache_dir.exists():
            shutil.rmtree(cache_dir)  # the build is timed from scratch

        start = time.perf_counter()
        cache = build_frame_cache(videos, cache_dir, workers=args.workers, **params)
        build_seconds = time.perf_counter() - start
        if cache.failed:
            log.warning("%d videos failed to decode and are left out (see %s)",
                        len(cache.failed), cache_dir / "failures.csv")
        video_ids = [v for v in videos if v not in cache.failed]
        decoded = DecodedFrames(videos, **params)

        fly = one_pass(decoded, video_ids, args.batch_size, args.workers, "on the fly")
        cached = one_pass(cache, video_ids, args.batch_size, args.workers, "frame cache")
        batched = batch_pass(cache_batches(cache, video_ids), args.batch_size, args.workers)
        copied = batch_pass(in_memory_batches(cache, video_ids), args.batch_size, args.workers)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    ratio = cached["frames_per_s"] / fly["frames_per_s"]
    saved = fly["seconds"] - cached["seconds"]
    report = {
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": data,
        "n_videos": len(video_ids),
        "cpus": os.cpu_count(),
        "platform": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
                    f"torch {torch.__version__}",
        "shards": len(cache.shards),
        "build_seconds": build_seconds,
        "on_the_fly": fly,
        "cache": cached,
        "ratio": ratio,
        "cache_batches": batched,
        "in_memory_copy": copied,
        "batch_ratio": batched["frames_per_s"] / fly["frames_per_s"],
        "copy_share": batched["frames_per_s"] / copied["frames_per_s"],
        "break_even_passes": build_seconds / saved if saved > 0 else float("inf"),
        "identical": len({p["checksum"] for p in (fly, cached, batched, copied)}) == 1
                     and fly["frames"] == cached["frames"] == batched["frames"],
    }

    print(f"{len(video_ids)} videos ({data}); max_frames={args.max_frames}, image_size={args.image_size}, "
          f"batch {args.batch_size}, {args.workers} workers, {os.cpu_count()} CPUs")
    print(f"{'source':<22}{'build s':>10}{'pass s':>10}{'videos/s':>11}{'frames/s':>11}")
    print(f"{'decoded on the fly':<22}{'-':>10}{fly['seconds']:>10.2f}{fly['videos_per_s']:>11.1f}"
          f"{fly['frames_per_s']:>11.0f}")
    print(f"{'frame cache':<22}{build_seconds:>10.2f}{cached['seconds']:>10.2f}{cached['videos_per_s']:>11.1f}"
          f"{cached['frames_per_s']:>11.0f}")
    print(f"{'cache, batch reads':<22}{'-':>10}{batched['seconds']:>10.2f}{batched['videos_per_s']:>11.1f}"
          f"{batched['frames_per_s']:>11.0f}")
    print(f"{'in memory, copied':<22}{'-':>10}{copied['seconds']:>10.3f}{copied['videos_per_s']:>11.1f}"
          f"{copied['frames_per_s']:>11.0f}")
    print(f"batch reads / on the fly: x{report['batch_ratio']:.1f}; batch reads / in-memory copy: "
          f"{100 * report['copy_share']:.0f}%")
    print(f"ratio frame cache (item by item) / on the fly: x{ratio:.1f} frames/s; the build pays for itself after "
          f"{report['break_even_passes']:.1f} passes; same frames: {'yes' if report['identical'] else 'NO'}")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frames.md").write_text(markdown(report), encoding="utf-8")
    (args.out / "frames.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.out / 'frames.md'} and {args.out / 'frames.json'}")


if __name__ == "__main__":
    main()
