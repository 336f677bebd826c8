"""How many cores a GPU needs to be fed: frames/s of the training loader (tclib.loader) at the paper's
batch shape, for 0, 1, 2, 4, ... worker processes, with the rate per worker.

What is timed is what a training run's loader does: shuffled batches of caption-video pairs from a
raw frame cache (one read per video straight into the batch's uint8 array, tokens, masks),
collated in the workers and, on a GPU machine, pinned. The cache holds --videos synthetic videos
of --frames frames at --size px, read by --pairs captions (several per video, as MSR-VTT's 20), so
after the first pass the reads come from the page cache, as they do when a data set's cache fits in
memory: this measures the loader, not the disk. The first --warmup batches of each setting are not
counted (the workers start and fill their queues).

    .venv/bin/python benchmarks/loader.py                              # batch 128 x 12 x 224 px, 0-2 workers
    .venv/bin/python benchmarks/loader.py --workers 0 1 2 4 8 16       # on a machine with more cores
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from report import write_report  # benchmarks/ is a folder of scripts

from tclib.data import PairDataset, Sampling, build_frame_cache, read_annotations, write_synthetic_msrvtt
from tclib.loader import training_loader
from tclib.models import Tokenizer


def frame_cache_pairs(folder: Path, videos: int, pairs: int, frames: int, size: int, words: int = 32) -> PairDataset:
    """`pairs` captions (of `words` tokens at most) over a raw frame cache of `videos` synthetic videos
    (`frames` frames of `size` px)."""
    workers = min(4, os.cpu_count() or 1)
    root = write_synthetic_msrvtt(folder / "data", n_train=videos, n_test=1, size=size, seed=0, workers=workers)
    table = read_annotations("msrvtt", root, "train")
    files = {v: str(root / "videos" / f"{v}.mp4") for v in table["video_id"].unique()}
    sampling = Sampling(max_frames=frames, image_size=size, framerate=0)  # every frame, `frames` kept uniformly
    cache = build_frame_cache(files, folder / "cache", sampling, workers=workers)
    captions = [f"caption {i} of a synthetic video" for i in range(pairs)]
    ids = [cache.video_ids[i % len(cache.video_ids)] for i in range(pairs)]
    return PairDataset(captions, ids, cache, Tokenizer(words))


def frames_per_second(dataset: PairDataset, batch: int, workers: int, batches: int, warmup: int, pin: bool) -> float:
    """Frames per second of `batches` batches after `warmup` uncounted ones, with `workers` processes."""
    loader = training_loader(dataset, batch, workers, torch.Generator().manual_seed(0), pin=pin)
    stream = iter(loader)
    for _ in range(warmup):
        next(stream)
    start, read = time.perf_counter(), 0
    while read < batches:
        try:
            frames = next(stream)["frames"]
        except StopIteration:
            stream = iter(loader)
            continue
        read += 1
    return read * batch * frames.shape[1] / (time.perf_counter() - start)


def table(args, rates: dict[int, float]) -> list[str]:
    lines = [f"## Training loader: batch {args.batch} x {args.frames} frames x {args.size}² px (uint8), "
             f"{os.cpu_count()} cores, pinned: {torch.cuda.is_available()}", "",
             "| worker processes | frames/s | batches/s | frames/s per worker |", "|---|---|---|---|"]
    for workers, rate in rates.items():
        per_worker = f"{rate / workers:,.0f}" if workers else "–"
        lines.append(f"| {workers} | {rate:,.0f} | {rate / args.batch / args.frames:.2f} | {per_worker} |")
    lines += ["", f"{args.batches} batches counted after {args.warmup} per setting; reads from the page cache "
              f"({args.videos} videos, {args.pairs} captions). A ViT-B/32 bf16 step at 40 % MFU on an H100 "
              "needs about 15,000 frames/s per GPU."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=1280)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default="results/benchmarks/loader.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        dataset = frame_cache_pairs(Path(folder), args.videos, args.pairs, args.frames, args.size)
        rates = {w: frames_per_second(dataset, args.batch, w, args.batches, args.warmup, torch.cuda.is_available())
                 for w in args.workers}
    lines = table(args, rates)
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
