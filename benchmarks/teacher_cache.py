"""What the teacher feature cache saves and costs: training-step time online against cached, and the
cache's size per data set.

Part 1 times one TeachCLIP training step (student forward, coarse + fine teaching, backward,
AdamW step) taught by two teachers (default X-CLIP + TS2-Net), with the teachers' full forward on
every batch (`teacher_mode: online`, as the reference trains) and with their features read from a
float16 memory-mapped cache (`teacher_mode: cached`), on the same synthetic batch and random
weights, in one run; prints the median step time of each and their ratio.

Part 2 encodes one caption and one video with every teacher at the model's shapes and multiplies
the bytes per row by each data set's training captions and videos: the cache's size on disk (it is
memory-mapped, so what it takes in memory is what the page cache keeps of it, bounded by the
batch for the process itself).

    .venv/bin/python benchmarks/teacher_cache.py                       # ViT-B/32 shapes, batch 8, CPU
    .venv/bin/python benchmarks/teacher_cache.py --batch 64 --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tclib.experiment.data import image_size_of
from tclib.models import TEACHERS, CLIP4Clip, Tokenizer, build_teacher, load_clip
from tclib.scoring import CachedTeacherScores, OnlineTeacherScores, cache_size, write_teacher_features
from tclib.teaching import TeachingObjective

# Training captions and videos per data set (the papers' splits; MSVD's ~40 captions per video and
# VATEX's 10 per video over 25,991 videos are approximate), frames and words of the reference configs.
DATASETS = {
    "MSR-VTT 9k": dict(captions=180_000, videos=9_000, frames=12, words=32),
    "MSR-VTT 7k": dict(captions=140_200, videos=7_010, frames=12, words=32),
    "MSVD": dict(captions=48_000, videos=1_200, frames=12, words=32),
    "DiDeMo": dict(captions=8_395, videos=8_395, frames=64, words=64),
    "ActivityNet": dict(captions=10_009, videos=10_009, frames=64, words=64),
    "VATEX": dict(captions=259_910, videos=25_991, frames=12, words=32),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(student, objective, batch, optimizer, device, steps: int) -> float:
    """Median seconds of a full training step, after one warm-up step."""
    times = []
    for i in range(steps + 1):
        synchronize(device)
        start = time.perf_counter()
        loss, _ = objective(student, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def teachers_for(names, model, frames, words, device):
    return [build_teacher(name, load_clip(model, ""), max_words=words, max_frames=frames).to(device).eval()
            for name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32-quickgelu", help="open_clip model name (random weights)")
    parser.add_argument("--teachers", default="xclip+ts2net")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--words", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="results/benchmarks/teacher_cache.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    names = args.teachers.split("+")
    size = image_size_of(args.model)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    frames = rng.integers(0, 256, (args.batch, args.frames, 3, size, size), dtype=np.uint8)
    mask = np.ones((args.batch, args.frames), dtype=np.int64)
    tokens = Tokenizer(args.words)([f"a synthetic caption number {i} about a scene" for i in range(args.batch)])
    batch = {"tokens": tokens.to(device), "frames": torch.from_numpy(frames).to(device),
             "frame_mask": torch.from_numpy(mask).to(device), "caption_index": torch.arange(args.batch),
             "video_index": torch.arange(args.batch)}
    teachers = teachers_for(names, args.model, args.frames, args.words, device)
    student = CLIP4Clip(load_clip(args.model, ""), temporal="seqTransf", afa=True).to(device).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-7)

    with tempfile.TemporaryDirectory() as tmp:
        caches = [write_teacher_features(Path(tmp) / t.name, t, tokens, frames, mask, np.arange(args.batch),
                                         args.batch, device, {"teacher": t.name}) for t in teachers]
        online = step_seconds(student, TeachingObjective(OnlineTeacherScores(teachers)), batch, optimizer, device,
                              args.steps)
        cached = step_seconds(student, TeachingObjective(CachedTeacherScores(teachers, caches)), batch, optimizer,
                              device, args.steps)

        per_row = {}
        for name in TEACHERS:
            for frames_n, words_n in sorted({(d["frames"], d["words"]) for d in DATASETS.values()}):
                teacher = teachers_for([name], args.model, frames_n, words_n, device)[0]
                one_video = rng.integers(0, 256, (1, frames_n, 3, size, size), dtype=np.uint8)
                features = write_teacher_features(Path(tmp) / f"{name}-{frames_n}", teacher,
                                                  Tokenizer(words_n)(["one caption"]), one_video,
                                                  np.ones((1, frames_n), dtype=np.int64), [0], 1, device, {})
                per_row[(name, frames_n, words_n)] = cache_size(features)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [f"## Training step taught by {' + '.join(names)}: {args.model} (random weights), {size} px, "
             f"{args.frames} frames, {args.words} words, batch {args.batch}, {where}", "",
             "| teacher_mode | seconds per step |", "|---|---|",
             f"| online (teachers run on every batch) | {online:.3f} |",
             f"| cached (float16 memory-mapped features) | {cached:.3f} |", "",
             f"cached is {online / cached:.1f}x faster per step", "",
             f"## Teacher feature cache on disk (float16), {args.model} shapes", "",
             "| data set | captions | videos | " + " | ".join(f"{n} GB" for n in TEACHERS) + " |",
             "|---|---|---|" + "---|" * len(TEACHERS)]
    for dataset, d in DATASETS.items():
        sizes = [per_row[(n, d["frames"], d["words"])] for n in TEACHERS]
        gb = [(s["bytes_per_caption"] * d["captions"] + s["bytes_per_video"] * d["videos"]) / 1e9 for s in sizes]
        lines.append(f"| {dataset} | {d['captions']:,} | {d['videos']:,} | " + " | ".join(f"{g:.2f}" for g in gb)
                     + " |")
    lines += ["", "Bytes per caption / per video: " + "; ".join(
        f"{n} ({f} frames, {w} words) {s['bytes_per_caption']:,} / {s['bytes_per_video']:,}"
        for (n, f, w), s in per_row.items())]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
