"""Frames per second of training input: decoding on the fly against reading the frame cache, and
what the cache costs on disk, raw or as JPEG.

Every source serves the same videos through a PairDataset and a DataLoader (one caption per video,
in order), so a pass is what a training epoch reads: item by item for decoding on the fly and the
raw cache, and a whole batch at a time from the raw and the JPEG cache, as training reads them; an
in-memory copy of the same bytes is the ceiling. Building a cache is a one-off cost, reported
apart. The JPEG cache's frames are compared with the raw cache's (mean absolute difference, PSNR),
and the bytes per frame of both give the cache's size for every data set of the paper. The
figures are measured in this one run and written to ``results/benchmarks/frames.md`` and
``frames.json`` (``--out``).

Videos: by default the script writes its own synthetic set (MSR-VTT layout, ``--size`` px square
frames at ``--fps``; 240 px and 30 fps are MSR-VTT's) into ``--work-dir`` or a temporary folder.
Its flat-coloured shapes make JPEG look better than it does on camera footage, so ``--photos DIR``
makes the videos from photographs instead (a window panning across each photo, H.264 at CRF 18,
as video sites compress); ``--data-root`` takes an existing MSR-VTT-layout set (its first
``--videos`` videos).

    .venv/bin/python benchmarks/frames.py [--videos 120] [--fps 30] [--image-size 224] [--max-frames 12]
    .venv/bin/python benchmarks/frames.py --photos <folder of photos> --out results/benchmarks/frames-photos
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

from tclib.data import DecodedFrames, PairDataset, Sampling, build_frame_cache, read_annotations, write_synthetic_msrvtt
from tclib.data.dataset import BatchReads
from tclib.data.framecache import DEFAULT_JPEG_QUALITY, FrameSource
from tclib.data.readers import PAPER_COUNTS
from tclib.errors import DataError

log = logging.getLogger("benchmarks.frames")
ROOT = Path(__file__).resolve().parent.parent


def existing_videos(root: Path, n: int) -> dict[str, str]:
    """The first ``n`` videos of an MSR-VTT-layout set (train split, then test split)."""
    videos: dict[str, str] = {}
    for split in ("train", "test"):
        try:
            table = read_annotations("msrvtt", root, split)
        except DataError as exc:
            log.warning("skipping the %s split of %s: %s", split, root, exc)
            continue
        videos.update(zip(table.video_id, table.video_path, strict=True))
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


PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def photo_videos(photos: Path, root: Path, n: int, size: int, fps: int, seconds: int) -> dict[str, str]:
    """`n` videos of `seconds` s at `fps`: a `size`-px window panning across each photo in turn (the
    photo scaled to a short side of 1.5 x size), encoded as H.264 at CRF 18 in yuv420p."""
    import av
    from PIL import Image

    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS)
    if not files:
        raise DataError(f"no photos ({', '.join(PHOTO_EXTENSIONS)}) in {photos}")
    root.mkdir(parents=True, exist_ok=True)
    videos = {}
    for i in tqdm(range(n), desc="write photo videos", unit="video"):
        with Image.open(files[i % len(files)]) as image:
            image = image.convert("RGB")
            scale = 1.5 * size / min(image.size)
            image = image.resize((max(size + 2, round(image.width * scale)), max(size + 2, round(image.height * scale))),
                                 Image.BICUBIC)
            photo = np.asarray(image)
        count = seconds * fps
        span_y, span_x = photo.shape[0] - size, photo.shape[1] - size
        direction = i // len(files)  # later videos of the same photo pan another way
        path = root / f"video{i}.mp4"
        with av.open(str(path), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            for t in range(count):
                a = t / max(count - 1, 1)
                a = 1 - a if direction % 2 else a
                y, x = round(a * span_y), round(a * span_x)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[y:y + size, x:x + size]), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        videos[f"video{i}"] = str(path)
    return videos


def cached_videos() -> dict[str, tuple[int, int, str]]:
    """Videos a frame cache holds per data set (training + test split of the paper's protocol), the
    reference configs' max_frames, and where the count comes from."""
    c = {name: {split: counts.videos for split, counts in splits.items()} for name, splits in PAPER_COUNTS.items()}
    return {
        "MSR-VTT (9k train + 1k-A test)": (c["msrvtt"]["train"] + c["msrvtt"]["test"], 12, "tclib.data.PAPER_COUNTS"),
        "MSR-VTT (7k train + 1k-A test)": (c["msrvtt"]["train-7k"] + c["msrvtt"]["test"], 12, "tclib.data.PAPER_COUNTS"),
        "MSVD (train + test)": (c["msvd"]["train"] + c["msvd"]["test"], 12, "tclib.data.PAPER_COUNTS"),
        "DiDeMo (train + test)": (c["didemo"]["train"] + c["didemo"]["test"], 64, "tclib.data.PAPER_COUNTS"),
        "ActivityNet (train + val_1)": (c["activitynet"]["train"] + c["activitynet"]["test"], 64,
                                        "tclib.data.PAPER_COUNTS"),
        "VATEX (train + test)": (25_991 + 1_500, 12, "the commonly used split; TeachCLIP's own csv files do not "
                                                     "state their sizes"),
    }


def folder_bytes(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.glob(pattern))  # allocated, as `du` counts


def compare_frames(raw, jpeg, video_ids: list[str], batch: int = 32) -> dict[str, float]:
    """Mean absolute difference (grey levels) and PSNR (dB) of the JPEG cache's real frames against
    the raw cache's, read a batch at a time."""
    total_abs = total_sq = count = 0.0
    rows = [raw.index_of(v) for v in video_ids]
    for start in range(0, len(rows), batch):
        part = np.asarray(rows[start:start + batch])
        real = raw.mask_of(part).astype(bool)
        a, b = raw.frames_of(part)[real].astype(np.int32), jpeg.frames_of(part)[real].astype(np.int32)
        total_abs += float(np.abs(a - b).sum())
        total_sq += float(((a - b) ** 2).sum())
        count += a.size
    mse = total_sq / count
    return {"mean_abs_diff": total_abs / count, "psnr_db": 10 * np.log10(255 ** 2 / mse) if mse else float("inf")}


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


def batch_pass(dataset, batch_size: int, workers: int, epochs: int) -> dict[str, float]:
    """Whole batches through a DataLoader (batch_size=None, a BatchSampler), as training reads a
    cache, `epochs` times over (the workers kept). Timed from the first batch on: the workers'
    start-up is reported apart. The checksum is the first epoch's."""
    batches = BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last=False)
    loader = DataLoader(dataset, batch_size=None, sampler=batches, num_workers=workers,
                        persistent_workers=workers > 0)
    frames = videos = checksum = 0
    checking = 0.0  # the checksum's own time, not counted
    start = time.perf_counter()
    first = None
    for batch in (batch for _ in range(epochs) for batch in loader):
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
    frames, videos, checksum = frames // epochs, videos // epochs, checksum // epochs
    return {"seconds": seconds, "startup_seconds": first - start, "videos": videos, "frames": frames,
            "videos_per_s": steady_videos / seconds, "frames_per_s": steady_frames / seconds, "checksum": checksum}


def cache_batches(cache, video_ids: list[str]) -> BatchReads:
    return BatchReads(PairDataset([f"caption of {v}" for v in video_ids], video_ids, cache,
                                  lambda texts: torch.zeros(len(texts), 1, dtype=torch.long)))


def in_memory_batches(cache, video_ids: list[str]) -> InMemoryBatches:
    rows = np.array([cache.index_of(v) for v in video_ids])
    return InMemoryBatches(cache.frames_of(rows), cache.mask_of(rows))


def size_table(report: dict) -> list[str]:
    """The cache's size per data set: raw exactly (every slot of max_frames, padding included), JPEG
    estimated with this run's bytes per real frame."""
    a = report["args"]
    raw_frame = 3 * a["image_size"] ** 2
    jpeg_frame = report["jpeg_bytes_per_frame"]
    lines = [f"| data set | videos | max_frames | raw GB | JPEG q{a['jpeg_quality']} GB (estimate) |",
             "|---|---:|---:|---:|---:|"]
    for name, (videos, frames, source) in cached_videos().items():
        slots = videos * frames
        note = "" if source == "tclib.data.PAPER_COUNTS" else f" ({source})"
        lines.append(f"| {name}{note} | {videos:,} | {frames} | {slots * (raw_frame + 8) / 1e9:.1f} | "
                     f"{slots * (jpeg_frame + 16 + 8) / 1e9:.1f} |")
    return lines


def markdown(report: dict) -> str:
    a = report["args"]
    fly, cache = report["on_the_fly"], report["cache"]
    batched, copied, jpeg = report["cache_batches"], report["in_memory_copy"], report["jpeg_batches"]
    quality = report["jpeg_quality"]
    lines = [
        "# Frames per second: decoding on the fly vs the frame cache, raw and JPEG",
        "",
        f"Command: `{report['command']}`",
        "",
        f"{report['n_videos']} videos ({report['data']}), max_frames={a['max_frames']}, "
        f"image_size={a['image_size']}, batch {a['batch_size']}, {a['workers']} DataLoader workers "
        f"(and {a['workers']} decoding processes for the cache builds), {report['cpus']} CPUs, "
        f"{report['platform']}.",
        "",
        f"| source | one-off build s | pass s (batch reads: {a['epochs']} epochs) | videos/s | frames/s |",
        "|---|---:|---:|---:|---:|",
        f"| decoded on the fly | - | {fly['seconds']:.2f} | {fly['videos_per_s']:.1f} | {fly['frames_per_s']:.0f} |",
        f"| raw frame cache, item by item, {report['shards']} shard(s) | {report['build_seconds']:.2f} | "
        f"{cache['seconds']:.2f} | {cache['videos_per_s']:.1f} | {cache['frames_per_s']:.0f} |",
        f"| raw frame cache, batch reads (training), after the first batch | - | {batched['seconds']:.3f} | "
        f"{batched['videos_per_s']:.1f} | {batched['frames_per_s']:.0f} |",
        f"| JPEG q{quality} frame cache, batch reads, after the first batch | {report['jpeg_build_seconds']:.2f} | "
        f"{jpeg['seconds']:.3f} | {jpeg['videos_per_s']:.1f} | {jpeg['frames_per_s']:.0f} |",
        f"| the same frames in memory, batches copied out, after the first batch | - | {copied['seconds']:.3f} | "
        f"{copied['videos_per_s']:.1f} | {copied['frames_per_s']:.0f} |",
        "",
        f"Raw batch reads / on the fly: **x{report['batch_ratio']:.1f}** frames/s (goal x20); raw batch reads / "
        f"an in-memory copy: **{100 * report['copy_share']:.0f}%** (goal 50%). JPEG batch reads / on the fly: "
        f"x{report['jpeg_ratio']:.1f}, {report['jpeg_frames_per_s_per_worker']:.0f} frames/s per worker. "
        f"Item-by-item reads from the raw cache / on the fly: x{report['ratio']:.1f}. "
        f"The raw build pays for itself after {report['break_even_passes']:.1f} passes. "
        f"Same frames from decoding, the raw cache and its batch reads: {'yes' if report['identical'] else 'NO'}.",
        "",
        f"On disk per real frame: raw {report['raw_bytes_per_frame']:,.0f} bytes (every max_frames slot is stored), "
        f"JPEG q{quality} {report['jpeg_bytes_per_frame']:,.0f} bytes (padding takes none): "
        f"**{report['raw_bytes_per_frame'] / report['jpeg_bytes_per_frame']:.1f}x smaller** on these videos. "
        f"JPEG frames against the raw ones: mean absolute difference {report['jpeg_error']['mean_abs_diff']:.2f} "
        f"grey levels, PSNR {report['jpeg_error']['psnr_db']:.1f} dB.",
        "",
        "The frame cache per data set (frames of 3 x image_size² bytes; the JPEG column multiplies this run's bytes "
        "per frame, so it holds for content like these videos'):",
        "",
        *size_table(report),
        "",
        "The passes read files that the cache builds have just read or written, so they are served from the",
        "OS page cache where memory allows. The item-by-item passes include starting the DataLoader",
        f"workers; the batch passes count from their first batch on (the workers started in "
        f"{batched['startup_seconds']:.2f} s), as in a training epoch, where start-up is paid once; all run",
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
                        help="DataLoader workers for the passes and decoding processes for the cache builds")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5, help="passes of the batch reads over the videos")
    parser.add_argument("--jpeg-quality", type=int, default=DEFAULT_JPEG_QUALITY)
    parser.add_argument("--data-root", type=Path, default=None,
                        help="an existing MSR-VTT-layout set (default: write videos)")
    parser.add_argument("--photos", type=Path, default=None,
                        help="make the videos from the photos in this folder (default: synthetic scenes)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each photo video")
    parser.add_argument("--size", type=int, default=240, help="frame size in px (square) of written videos")
    parser.add_argument("--fps", type=int, default=30, help="frame rate of written videos")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the videos and the caches go (default: a temporary folder, removed)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    args = parser.parse_args()
    if args.videos * args.epochs <= args.batch_size:
        parser.error("the batch passes are timed after their first batch: --videos x --epochs must exceed --batch-size")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="tclib-frames-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        if args.data_root is not None:
            videos = existing_videos(args.data_root, args.videos)
            data = f"from {args.data_root}"
        elif args.photos is not None:
            videos = photo_videos(args.photos, work / "data", args.videos, args.size, args.fps, args.seconds)
            data = (f"{args.seconds} s pans across the photos of {args.photos}, {args.size}x{args.size} px at "
                    f"{args.fps} fps, H.264 CRF 18, written in {time.perf_counter() - start:.1f} s")
        else:
            videos = synthetic_videos(work / "data", args.videos, args.size, args.fps, args.workers)
            data = (f"synthetic, {args.size}x{args.size} px at {args.fps} fps, "
                    f"written in {time.perf_counter() - start:.1f} s")
        sampling = Sampling(args.max_frames, args.image_size, framerate=1, slice_framepos=2)
        # the builds are timed from scratch, in a folder of this run's own: nothing already in --work-dir is touched
        caches = Path(tempfile.mkdtemp(dir=work, prefix="caches-"))

        start = time.perf_counter()
        cache = build_frame_cache(videos, caches / "raw", sampling, workers=args.workers)
        build_seconds = time.perf_counter() - start
        start = time.perf_counter()
        jpeg_cache = build_frame_cache(videos, caches / "jpeg", sampling, workers=args.workers, storage="jpeg",
                                       jpeg_quality=args.jpeg_quality)
        jpeg_build_seconds = time.perf_counter() - start
        if cache.failed:
            log.warning("%d videos failed to decode and are left out (see %s)",
                        len(cache.failed), caches / "raw" / "failures.csv")
        video_ids = [v for v in videos if v not in cache.failed]
        decoded = DecodedFrames(videos, sampling)

        fly = one_pass(decoded, video_ids, args.batch_size, args.workers, "on the fly")
        cached = one_pass(cache, video_ids, args.batch_size, args.workers, "frame cache")
        batched = batch_pass(cache_batches(cache, video_ids), args.batch_size, args.workers, args.epochs)
        jpeg = batch_pass(cache_batches(jpeg_cache, video_ids), args.batch_size, args.workers, args.epochs)
        copied = batch_pass(in_memory_batches(cache, video_ids), args.batch_size, args.workers, args.epochs)
        real_frames = int(np.asarray(cache.mask[:]).sum())
        raw_bytes = folder_bytes(caches / "raw", "frames-*.npy")
        jpeg_bytes = folder_bytes(caches / "jpeg", "frames-*.jpeg")
        error = compare_frames(cache, jpeg_cache, video_ids)
        shutil.rmtree(caches)  # this run's own caches, built above
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)  # the temporary folder this run made

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
        "jpeg_build_seconds": jpeg_build_seconds,
        "jpeg_quality": args.jpeg_quality,
        "on_the_fly": fly,
        "cache": cached,
        "ratio": ratio,
        "cache_batches": batched,
        "jpeg_batches": jpeg,
        "in_memory_copy": copied,
        "batch_ratio": batched["frames_per_s"] / fly["frames_per_s"],
        "jpeg_ratio": jpeg["frames_per_s"] / fly["frames_per_s"],
        "jpeg_frames_per_s_per_worker": jpeg["frames_per_s"] / max(args.workers, 1),
        "copy_share": batched["frames_per_s"] / copied["frames_per_s"],
        "break_even_passes": build_seconds / saved if saved > 0 else float("inf"),
        "identical": len({p["checksum"] for p in (fly, cached, batched, copied)}) == 1
                     and fly["frames"] == cached["frames"] == batched["frames"],
        "raw_bytes_per_frame": raw_bytes / real_frames,
        "jpeg_bytes_per_frame": jpeg_bytes / real_frames,
        "jpeg_error": error,
    }

    text = markdown(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frames.md").write_text(text, encoding="utf-8")
    (args.out / "frames.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.out / 'frames.md'} and {args.out / 'frames.json'}")


if __name__ == "__main__":
    main()
