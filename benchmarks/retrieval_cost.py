"""Retrieval cost of a TeachCLIP/CLIP4Clip student against the X-CLIP teacher, from cached features.

Both models score the same texts against the same videos with ViT-B/32 sizes (D=512, 12 frames,
32 words); only the scoring step is timed (features are computed offline either way). Prints
floats stored per video, seconds per full text x video score matrix, and the ratios, all measured
in this one run.

    .venv/bin/python benchmarks/retrieval_cost.py [--texts 1000] [--videos 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tclib.models import XCLIP, load_clip
from tclib.models.teachers import select


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--block", type=int, default=25, help="texts scored at once by X-CLIP")
    parser.add_argument("--out", default="results/benchmarks/retrieval_cost.md", help="where the table is written")
    args = parser.parse_args()
    dim, frames, words = 512, 12, 32
    torch.manual_seed(0)
    normalize = torch.nn.functional.normalize

    text = normalize(torch.randn(args.texts, dim), dim=-1)
    video = normalize(torch.randn(args.videos, dim), dim=-1)
    teacher = XCLIP(load_clip("ViT-B-32", ""), max_words=words, max_frames=frames, temporal_layers=1).eval()
    t_text = {"sentence": text, "words": normalize(torch.randn(args.texts, words, dim), dim=-1)}
    t_video = {"video": video, "frames": normalize(torch.randn(args.videos, frames, dim), dim=-1),
               "mask": torch.ones(args.videos, frames, dtype=torch.long)}

    with torch.no_grad():
        student_s = best_of(lambda: text @ video.t())
        teacher_s = best_of(lambda: [teacher.similarity(select(t_text, slice(i, i + args.block)), t_video)
                                     for i in range(0, args.texts, args.block)], repeats=1)
    student_floats, teacher_floats = dim, dim + frames * dim
    lines = [f"{args.texts} texts x {args.videos} videos, D={dim}, {frames} frames, {words} words, "
             f"{torch.get_num_threads()} threads",
             f"{'model':<22}{'floats/video':>14}{'score seconds':>16}",
             f"{'TeachCLIP student':<22}{student_floats:>14}{student_s:>16.4f}",
             f"{'X-CLIP teacher':<22}{teacher_floats:>14}{teacher_s:>16.4f}",
             f"ratio teacher/student: storage x{teacher_floats / student_floats:.0f}, "
             f"scoring time x{teacher_s / student_s:.0f}"]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("```\n" + "\n".join(lines) + "\n```\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
