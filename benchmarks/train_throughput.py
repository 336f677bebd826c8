"""How fast the TeachCLIP student trains: samples/s, frames/s and model FLOP utilization (MFU) of
one training step, and what an epoch of each data set costs at that rate.

What is timed is one step of `tclib.train` for the `teachclip` run with `teacher_mode: cached`:
the batch moved to the device (uint8 frames, from pinned memory on CUDA); the student (CLIP4Clip
with a seqTransf head and AFA, random weights, built as the pipeline builds it) run on B captions
and their B videos; the teachers' in-batch logits and frame relevance computed from their float16
memory-mapped feature caches; the contrastive, coarse and fine teaching losses (forward and losses
under bfloat16 autocast with --precision bf16); backward; gradient clipping; the AdamW step over
the trainer's parameter groups; the learning-rate schedule step. Not timed: reading and decoding
frames (the data loader's work) and writing the teacher caches (done once before training).
Frames, captions and teachers are synthetic and random; the training settings (teachers, learning
rates, loss methods, gradient clipping, seqTransf depth, AFA temperature) are those of --params.
Each step moves the weights: the first step is the warm-up, the median of the next --steps is
reported. No torch.backends setting is changed: the kit trains with PyTorch's defaults.

FLOPs are counted once, on the warm-up step, with torch.utils.flop_counter.FlopCounterMode:
matrix products, convolutions and attention of forward and backward (elementwise work is not
counted). Achieved TFLOP/s = FLOPs per step / median step time; MFU = achieved / the device's
dense peak for the precision its matrix products run in (table PEAK_TFLOPS, or --peak-tflops).

The second table divides each data set's training pairs (one per caption) by the measured
samples/s; a row applies only when its reference frames and words are the measured ones (DiDeMo
and ActivityNet use 64 frames, 64 words and batch 64: measure them with --params params/didemo.yaml).

    .venv/bin/python benchmarks/train_throughput.py                     # CPU: batch 4, 2 steps, fp32
    .venv/bin/python benchmarks/train_throughput.py --device cuda       # GPU: batch 120, 10 steps, fp32
    .venv/bin/python benchmarks/train_throughput.py --device cuda --precision bf16
    .venv/bin/python benchmarks/train_throughput.py --device cuda --params params/didemo.yaml \\
        --out results/benchmarks/train_throughput-64frames.md          # 64 frames, 64 words, batch 64
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tclib.experiment.data import image_size_of
from tclib.experiment.runs import parse_run
from tclib.experiment.training import training_inputs
from tclib.models import CLIP4Clip, Tokenizer, build_teacher, load_clip
from tclib.params import Params, load_params
from tclib.project import resolve_path
from tclib.scoring import CachedTeacherScores, write_teacher_features
from tclib.teaching import TeachingObjective
from tclib.train import TrainConfig, optimizer_and_schedule, param_groups, resolve_device, to_device, training_step

sys.path.insert(0, str(Path(__file__).resolve().parent))
from teacher_cache import DATASETS, synchronize  # noqa: E402  (benchmarks/ is a folder of scripts)

RUN = "teachclip"

# The params file of each data set of DATASETS: its reference frames, words, batch and epochs.
PARAMS_FILES = {"MSR-VTT 9k": "params/msrvtt-9k.yaml", "MSR-VTT 7k": "params/msrvtt-7k.yaml",
                "MSVD": "params/msvd.yaml", "DiDeMo": "params/didemo.yaml",
                "ActivityNet": "params/activitynet.yaml", "VATEX": "params/vatex.yaml"}

# Dense (without sparsity) peak TFLOP/s from NVIDIA's datasheets: bf16 and tf32 on tensor cores,
# fp32 on CUDA cores (what fp32 matrix products run at when TF32 is not allowed). The first entry
# whose name is part of the device's name applies, so longer names come first.
PEAK_TFLOPS = [
    ("H200 NVL", dict(bf16=835.5, tf32=417.5, fp32=60.0)),
    ("H200", dict(bf16=989.5, tf32=494.5, fp32=67.0)),
    ("H100 NVL", dict(bf16=835.5, tf32=417.5, fp32=60.0)),
    ("H100 PCIe", dict(bf16=756.0, tf32=378.0, fp32=51.0)),
    ("H100", dict(bf16=989.5, tf32=494.5, fp32=67.0)),  # SXM
    ("A100", dict(bf16=312.0, tf32=156.0, fp32=19.5)),
    ("L40S", dict(bf16=362.0, tf32=183.0, fp32=91.6)),
    ("L4", dict(bf16=121.0, tf32=60.0, fp32=30.3)),
    ("A10", dict(bf16=125.0, tf32=62.5, fp32=31.2)),
]


def matmul_precision(device: torch.device, precision: str) -> str:
    """What the matrix products run in: bf16 under autocast, else tf32 when CUDA allows it, else fp32."""
    if precision == "bf16":
        return "bf16"
    return "tf32" if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32 else "fp32"


def peak_tflops(gpu: str, kind: str) -> tuple[float | None, str]:
    """The dense peak of the GPU named `gpu` for `kind` (bf16/tf32/fp32) and where it comes from; None if unknown."""
    for name, peaks in PEAK_TFLOPS:
        if name in gpu:
            return peaks[kind], f"{name} {kind}, NVIDIA datasheet (dense)"
    return None, "unknown device"


def rate(value: float) -> str:
    """A rate with at least three significant digits."""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def build_student(P: Params, model: str) -> CLIP4Clip:
    """The `teachclip` run's student as the pipeline builds it, on a randomly initialized CLIP."""
    spec = parse_run(RUN)
    return CLIP4Clip(load_clip(model, ""), temporal=spec.temporal, afa=spec.afa,
                     temporal_layers=P.temporal_layers, afa_temperature=P.afa_temperature,
                     mask_padding=P.mask_padded_frames)


def build_teachers(P: Params, model: str, frames: int, words: int, device: torch.device) -> list:
    return [build_teacher(name, load_clip(model, ""), words, frames, P.temporal_layers,
                          mask_padding=P.mask_padded_frames, **P.teacher_options.get(name, {})).to(device).eval()
            for name in P.teachers]


def synthetic_batch(batch: int, frames: int, words: int, size: int, device: torch.device) -> dict:
    """B captions and their B videos of uint8 frames, on the CPU (pinned for a GPU) as the loader gives them."""
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (batch, frames, 3, size, size), dtype=np.uint8))
    tokens = Tokenizer(words)([f"a synthetic caption number {i} about a scene" for i in range(batch)])
    out = {"tokens": tokens, "frames": pixels, "frame_mask": torch.ones(batch, frames, dtype=torch.long),
           "caption_index": torch.arange(batch), "video_index": torch.arange(batch)}
    return {k: v.pin_memory() for k, v in out.items()} if device.type == "cuda" else out


def train_config(P: Params, batch: int, precision: str, device: torch.device) -> TrainConfig:
    """The trainer's settings of a student run of `P` (as the student stage builds them), at this batch
    size, precision and device."""
    P = dataclasses.replace(P, batch_size=batch, precision=precision, device=str(device))
    return training_inputs(P, P.epochs, P.lr, student=True, afa=parse_run(RUN).afa).train_config(0, P)


class Step:
    """One step of tclib.train's loop (tclib.train.training_step), with the trainer's optimizer and schedule."""

    def __init__(self, student: nn.Module, objective: TeachingObjective, config: TrainConfig, total_steps: int,
                 device: torch.device) -> None:
        self.student, self.objective, self.config, self.device = student, objective, config, device
        self.optimizer, self.scheduler = optimizer_and_schedule(param_groups(student, config), config, total_steps)

    def __call__(self, batch: dict) -> float:
        loss, _ = training_step(self.student, batch, self.objective, self.optimizer, self.scheduler, self.config,
                                self.device)
        return loss.item()


def counted_flops(step: Step, batch: dict) -> tuple[int, int]:
    """FLOPs of one step, run under FlopCounterMode, and of the teachers' scoring from the cache in it."""
    with FlopCounterMode(display=False) as counter:
        step(batch)
    with FlopCounterMode(display=False) as teachers:
        step.objective.scores(to_device(batch, step.device))
    return counter.get_total_flops(), teachers.get_total_flops()


def median_seconds(step: Step, batch: dict, steps: int) -> float:
    times = []
    for _ in range(steps):
        synchronize(step.device)
        start = time.perf_counter()
        step(batch)
        synchronize(step.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput_table(args, P: Params, size: int, seconds: float, flops: int, teacher_flops: int,
                     peak: float | None, peak_source: str, kind: str, device: torch.device) -> list[str]:
    samples = args.batch / seconds
    achieved = flops / seconds / 1e12
    mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (give --peak-tflops)"
    peak_text = f"{peak:g} ({peak_source})" if peak else f"n/a ({peak_source or 'CPU'})"
    lines = [f"## TeachCLIP student training step: {args.model} (random weights), {size} px, {args.frames} frames, "
             f"{args.words} words, batch {args.batch}, {args.precision}, {device_name(device)}", "",
             "| measure | value |", "|---|---|",
             f"| seconds per step (median of {args.steps}) | {seconds:.3f} |",
             f"| samples/s (caption-video pairs) | {rate(samples)} |",
             f"| frames/s | {rate(samples * args.frames)} |",
             f"| TFLOP per step (forward + backward) | {flops / 1e12:.3f} |",
             f"| of which the teachers' scoring from the cache | {100 * teacher_flops / flops:.2g}% |",
             f"| GFLOP per pair | {flops / args.batch / 1e9:.1f} |",
             f"| achieved TFLOP/s | {rate(achieved)} |",
             f"| peak TFLOP/s, matrix products in {kind} | {peak_text} |",
             f"| MFU | {mfu} |", "",
             f"Taught by {' + '.join(P.teachers)} from float16 feature caches (teacher_mode: cached); the "
             f"training settings of {args.params}. FLOPs counted on the warm-up step (FlopCounterMode)."]
    if device.type == "cuda":
        lines.append(f"TF32: matmuls {'allowed' if torch.backends.cuda.matmul.allow_tf32 else 'not allowed'}, "
                     f"cuDNN convolutions {'allowed' if torch.backends.cudnn.allow_tf32 else 'not allowed'} "
                     f"(PyTorch's defaults, which tclib keeps); MFU is against the {kind} peak.")
    return lines


def epoch_table(args, samples_per_s: float, device: torch.device) -> list[str]:
    where = "GPU" if device.type == "cuda" else "CPU"
    lines = [f"## One epoch per data set at {rate(samples_per_s)} pairs/s ({args.frames} frames, {args.words} words, "
             f"batch {args.batch}, {args.precision}, one {where})", "",
             "| data set | pairs per epoch | reference frames / words / batch | epochs (params) | epoch | "
             f"{where}-hours for the epochs |", "|---|---|---|---|---|---|"]
    for dataset, d in DATASETS.items():
        params_file = PARAMS_FILES[dataset]
        R = load_params(params_file)
        reference = f"{R.max_frames} / {R.max_words} / {R.batch_size}"
        if (R.max_frames, R.max_words) != (args.frames, args.words):
            cost = f"measure with --params {params_file}", "–"
        else:
            seconds = d["captions"] / samples_per_s
            cost = f"{seconds / 3600:.2f} h", f"{R.epochs * seconds / 3600:.1f}"
        lines.append(f"| {dataset} | {d['captions']:,} | {reference} | {R.epochs} | {cost[0]} | {cost[1]} |")
    lines += ["", "Pairs per epoch: one per training caption. Over several GPUs the wall time divides by about "
              "their number and the GPU-hours stay about the same. The rate was measured at the batch above; "
              "the reference batch may differ."]
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params/msrvtt-9k.yaml",
                        help="the run whose training settings, teachers, frames and words are used")
    parser.add_argument("--model", default="ViT-B-32-quickgelu", help="open_clip model name (random weights)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch", type=int, help="captions (and videos) per step; default the params' batch_size on a GPU, 4 on CPU")
    parser.add_argument("--steps", type=int, help="timed steps after the warm-up; default 10 on a GPU, 2 on CPU")
    parser.add_argument("--frames", type=int, help="frames per video; default the params' max_frames")
    parser.add_argument("--words", type=int, help="words per caption; default the params' max_words")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s for MFU (overrides the table)")
    parser.add_argument("--out", default="results/benchmarks/train_throughput.md")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    P = load_params(args.params, {"clip_model": args.model, "clip_pretrained": ""})
    on_gpu = device.type == "cuda"
    args.batch = args.batch or (P.batch_size if on_gpu else 4)
    args.steps = args.steps or (10 if on_gpu else 2)
    args.frames = args.frames or P.max_frames
    args.words = args.words or P.max_words
    size = image_size_of(args.model)
    torch.manual_seed(0)

    batch = synthetic_batch(args.batch, args.frames, args.words, size, device)
    teachers = build_teachers(P, args.model, args.frames, args.words, device)
    student = build_student(P, args.model).to(device).train()
    with tempfile.TemporaryDirectory() as tmp:
        caches = [write_teacher_features(Path(tmp) / t.name, t, batch["tokens"], batch["frames"].numpy(),
                                         batch["frame_mask"].numpy(), np.arange(args.batch), args.batch, device,
                                         {"teacher": t.name}) for t in teachers]
        objective = TeachingObjective(CachedTeacherScores(teachers, caches), P.coarse_method, P.fine_method,
                                      use_fine=parse_run(RUN).fine, weights=P.loss_weights, beta=P.beta)
        step = Step(student, objective, train_config(P, args.batch, args.precision, device), args.steps + 1, device)
        flops, teacher_flops = counted_flops(step, batch)  # the warm-up step
        seconds = median_seconds(step, batch, args.steps)

    kind = matmul_precision(device, args.precision)
    if args.peak_tflops:
        peak, source = args.peak_tflops, "given with --peak-tflops"
    else:
        peak, source = peak_tflops(device_name(device), kind) if on_gpu else (None, "")
    lines = throughput_table(args, P, size, seconds, flops, teacher_flops, peak, source, kind, device)
    lines += [""] + epoch_table(args, args.batch / seconds, device)
    print("\n".join(lines))
    out = Path(resolve_path(args.out))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
