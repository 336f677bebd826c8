"""Peak memory of each stage against the size of the test set: bounded by the batch, not the data.

For each size (default 200 and 1,600 test videos), writes a synthetic set, then runs each stage in
a process of its own and records that process's peak resident memory (ru_maxrss): data prep
(synthetic videos, frame cache at 224 px, a short backbone pretraining), teacher scoring (X-CLIP,
trained one epoch on 40 training videos, and its feature cache), student training (one epoch),
evaluation (every model over the whole test set) and the attention report. The model is
`tclib-tiny-224` (tclib-tiny's widths at 224 px input, 32-px patches), so frames are as large as
ViT-B/32's while the model stays small. Prints the ratios large/small and writes
``results/benchmarks/scale.md`` and ``scale.json``.

    .venv/bin/python benchmarks/scale.py [--sizes 200 1600] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STAGES = {
    "data prep": "prepare_data(P)",
    "teacher scoring": "prepare_teachers(P, prepare_data(P))",
    "student training": "train_students(P, data := prepare_data(P), prepared_teachers(P, data))",
    "evaluation": "evaluate_all(P, prepare_data(P), out)",
    "attention report": "attention_report(P, prepare_data(P), out)",
}

CHILD = """
import json, resource, sys
from pathlib import Path
from tclib.experiment.attention import attention_report
from tclib.experiment.data import prepare_data
from tclib.experiment.evaluation import evaluate_all
from tclib.experiment.students import train_students
from tclib.experiment.teachers import prepare_teachers, prepared_teachers
from tclib.params import Params
P = Params.from_mapping(json.loads(sys.argv[1]))
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
{call}
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def params_for(work: Path, test_videos: int, args: argparse.Namespace) -> dict:
    return dict(exp=f"scale{test_videos}", results_dir=str(work / "results"), data_root=str(work / f"data{test_videos}"),
                synthetic=True, synthetic_train_videos=args.train_videos, synthetic_test_videos=test_videos,
                synthetic_frame_size=64, seeds=[0], clip_model="tclib-tiny-224", clip_pretrained="",
                pretrain_steps=4, pretrain_batch_size=16, teachers=["xclip"],
                runs=["clip4clip-meanP", "teachclip:xclip"], teacher_epochs=1, epochs=1, batch_size=16,
                eval_batch_size=args.eval_batch_size, decode_workers=args.workers, max_frames=12, plot_videos=2)


def run_stage(name: str, params: dict, out: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD.format(call=STAGES[name]), json.dumps(params), str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{name} failed for {params['exp']} (exit {done.returncode})")
    peak_kb = int(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_KB")))
    return {"peak_mb": peak_kb / 1024, "seconds": time.perf_counter() - started}


def markdown(report: dict) -> str:
    small, large = (str(s) for s in report["sizes"])
    lines = [
        "# Peak memory per stage against the test set's size",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Synthetic sets of {small} and {large} test videos ({report['train_videos']} training videos each), "
        f"12 frames of 224 px per video, model tclib-tiny-224, evaluation batch {report['eval_batch_size']}, "
        f"{report['cpus']} CPUs, {report['platform']}. Each stage runs in a process of its own; peak = that "
        "process's maximum resident memory, the Python interpreter and torch included.",
        "",
        f"| stage | peak MB, {small} videos | peak MB, {large} videos | ratio | s, {small} | s, {large} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for stage, row in report["stages"].items():
        a, b = row[small], row[large]
        lines.append(f"| {stage} | {a['peak_mb']:.0f} | {b['peak_mb']:.0f} | {b['peak_mb'] / a['peak_mb']:.2f} | "
                     f"{a['seconds']:.0f} | {b['seconds']:.0f} |")
    lines += ["", f"Frames of the larger test set: {report['frame_gb'][large]:.2f} GB in the frame cache on disk.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[200, 1600], help="test videos of the two sets")
    parser.add_argument("--train-videos", type=int, default=40)
    parser.add_argument("--eval-batch-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder, removed")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="tclib-scale-"))
    stages: dict[str, dict] = {name: {} for name in STAGES}
    frame_gb = {}
    try:
        for size in args.sizes:
            params = params_for(work, size, args)
            for name in STAGES:
                stages[name][str(size)] = result = run_stage(name, params, work / "out" / str(size))
                print(f"{size:>6} test videos  {name:<18} peak {result['peak_mb']:8.0f} MB  {result['seconds']:6.0f} s",
                      flush=True)
            frame_gb[str(size)] = sum(f.stat().st_size for f in (work / "results" / f"scale{size}" / "frames").rglob(
                "frames-*.npy")) / 1e9
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    import torch

    report = {
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "sizes": args.sizes, "train_videos": args.train_videos, "eval_batch_size": args.eval_batch_size,
        "cpus": os.cpu_count(),
        "platform": f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}",
        "stages": stages, "frame_gb": frame_gb,
    }
    small, large = (str(s) for s in args.sizes)
    ratios = {name: row[large]["peak_mb"] / row[small]["peak_mb"] for name, row in stages.items()}
    print(f"peak memory ratio for {args.sizes[1] / args.sizes[0]:.0f}x the test videos: "
          + ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text(markdown(report), encoding="utf-8")
    (args.out / "scale.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.out / 'scale.md'} and {args.out / 'scale.json'}")


if __name__ == "__main__":
    main()
