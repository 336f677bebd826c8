"""How fast the TeachCLIP student trains in tclib's own loop: samples/s, the share of the time spent
waiting for data, peak memory and model FLOP utilization (MFU), and what an epoch of each data set
costs at that rate.

What is timed is `tclib.train.train` itself, for the `teachclip` run with `teacher_mode: cached`:
batches of caption-video pairs read from a raw frame cache by the training loader (its worker
processes, pinned, copied a step ahead), with the teachers' rows of each batch read from their
float16 feature caches in the loader; the student (CLIP4Clip with a seqTransf head and AFA,
random weights, as the pipeline builds it) under the params' precision (bf16 autocast with
--precision bf16; TF32 for fp32 matrix products on CUDA unless --no-tf32), optionally with
activation checkpointing, exact gradient accumulation or torch.compile; the contrastive, coarse and
fine teaching losses, the teachers scoring in float32; backward, clipping, AdamW, the schedule.
The loop reads its losses back every --warmup steps and writes them with samples/s and the
data-wait share (tclib.monitor): the first --warmup steps are not counted, the rates are the mean
of the --steps after them. The frame cache holds synthetic videos read by several captions each,
so after the first pass the reads come from the page cache (benchmarks/loader.py measures the
loader alone). Training settings (teachers, learning rates, loss methods, clipping, seqTransf
depth, AFA temperature) are those of --params.

FLOPs are counted once, on an extra step before the run, with torch.utils.flop_counter.FlopCounterMode:
matrix products, convolutions and attention of forward and backward (elementwise work is not
counted; a checkpointed or accumulated step's second forward is counted, as it is computed).
Achieved TFLOP/s = FLOPs per step x steps/s; MFU = achieved / the device's dense peak for the
precision its matrix products run in (table PEAK_TFLOPS, or --peak-tflops). Peak memory is
torch.cuda.max_memory_allocated on a GPU (n/a on a CPU).

The second table divides each data set's training pairs (one per caption) by the measured
samples/s; a row applies only when its reference frames and words are the measured ones (DiDeMo
and ActivityNet use 64 frames, 64 words and batch 64: measure them with --params params/didemo.yaml).

    .venv/bin/python benchmarks/train_throughput.py                     # CPU: batch 4, fp32
    .venv/bin/python benchmarks/train_throughput.py --device cuda --precision bf16 --batch 128
    .venv/bin/python benchmarks/train_throughput.py --device cuda --precision bf16 --batch 128 \\
        --model ViT-B-16-quickgelu --grad-checkpointing --out results/benchmarks/train_throughput-b16.md
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from tclib.experiment.data import image_size_of
from tclib.experiment.runs import parse_run
from tclib.experiment.training import training_inputs
from tclib.loader import loader_workers, to_device
from tclib.models import CLIP4Clip, build_teacher, load_clip
from tclib.monitor import read_training_log
from tclib.params import Params, load_params
from tclib.scoring import CachedTeacherScores, write_teacher_features
from tclib.teaching import TeachingObjective
from tclib.train import TrainConfig, optimizer_and_schedule, param_groups, resolve_device, train, training_step

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader import frame_cache_pairs  # noqa: E402  (benchmarks/ is a folder of scripts)
from report import write_report  # noqa: E402
from teacher_cache import DATASETS  # noqa: E402

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


def matmul_precision(device: torch.device, config: TrainConfig) -> str:
    """What the matrix products run in: bf16 under autocast, else tf32 on CUDA with tf32, else fp32."""
    if config.precision == "bf16":
        return "bf16"
    return "tf32" if device.type == "cuda" and config.tf32 else "fp32"


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


def train_config(P: Params, args, device: torch.device) -> TrainConfig:
    """The trainer's settings of a student run of `P` (as the student stage builds them) with this
    benchmark's batch, precision, device and switches; the losses read back every --warmup steps."""
    P = dataclasses.replace(P, batch_size=args.batch, precision=args.precision, device=str(device), tf32=args.tf32,
                            grad_accumulation=args.grad_accumulation, grad_checkpointing=args.grad_checkpointing,
                            compile=args.compile, num_workers=args.workers, log_every=args.warmup)
    config = training_inputs(P, 1, P.lr, student=True, afa=parse_run(RUN).afa).train_config(0, P)
    return config


def teaching_objective(P: Params, args, dataset, device: torch.device, folder: Path) -> TeachingObjective:
    """The params' teachers (random weights) with feature caches of the benchmark's captions and videos."""
    teachers = build_teachers(P, args.model, args.frames, args.words, device)
    cache = dataset.cache
    rows = np.arange(len(cache))
    caches = [write_teacher_features(folder / t.name, t, dataset.tokens, cache.frames, cache.mask, rows,
                                     min(args.batch, 64), device, {"teacher": t.name}) for t in teachers]
    return TeachingObjective(CachedTeacherScores(teachers, caches), P.coarse_method, P.fine_method,
                             use_fine=parse_run(RUN).fine, weights=P.loss_weights, beta=P.beta)


def counted_flops(student: CLIP4Clip, objective: TeachingObjective, dataset, config: TrainConfig,
                  device: torch.device) -> tuple[int, int]:
    """FLOPs of one training step (on a copy's optimizer: the run starts from the same weights) and of
    the teachers' scoring from the cache in it."""
    batch = dataset.batch(np.arange(config.batch_size))
    batch = {**batch, **objective.loader_extras(batch)}
    optimizer, scheduler = optimizer_and_schedule(param_groups(student, config), config, 1, device)
    state = {k: v.clone() for k, v in student.state_dict().items()}
    with FlopCounterMode(display=False) as counter:
        training_step(student, batch, objective, optimizer, scheduler, config, device)
    with FlopCounterMode(display=False) as teachers:
        objective.scores(to_device(batch, device))
    student.load_state_dict(state)
    return counter.get_total_flops(), teachers.get_total_flops()


def measured(folder: Path, warmup: int) -> dict[str, float]:
    """The loop's own figures after the warm-up steps: mean samples/s and data-wait share of the
    intervals it logged, and the peak GPU memory."""
    log = read_training_log(folder)
    counted = log[log.step > warmup]
    rates = counted[counted.name == "samples_per_s"].value
    waits = counted[counted.name == "data_wait_share"].value
    memory = log[log.name == "gpu_memory_peak_gb"].value
    return {"samples_per_s": float(rates.mean()), "data_wait_share": float(waits.mean()),
            "gpu_memory_peak_gb": float(memory.max()) if len(memory) else float("nan"), "intervals": len(rates)}


def throughput_table(args, P: Params, config: TrainConfig, size: int, figures: dict, flops: int,
                     teacher_flops: int, peak: float | None, peak_source: str, kind: str, device: torch.device
                     ) -> list[str]:
    samples = figures["samples_per_s"]
    achieved = flops * samples / config.batch_size / 1e12
    mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (give --peak-tflops)"
    peak_text = f"{peak:g} ({peak_source})" if peak else f"n/a ({peak_source or 'CPU'})"
    memory = f"{figures['gpu_memory_peak_gb']:.1f}" if device.type == "cuda" else "n/a (CPU)"
    switches = [f"{config.precision}", f"TF32 {'on' if kind == 'tf32' else 'off'}",
                f"checkpointing {'on' if config.grad_checkpointing else 'off'}",
                f"grad_accumulation {config.grad_accumulation}", f"compile {'on' if config.compile else 'off'}",
                f"{args.workers_used} loader workers"]
    lines = [f"## TeachCLIP student training in tclib's loop: {args.model} (random weights), {size} px, "
             f"{args.frames} frames, {args.words} words, batch {config.batch_size}, {device_name(device)}", "",
             f"Settings: {', '.join(switches)}.", "",
             "| measure | value |", "|---|---|",
             f"| samples/s (caption-video pairs), mean of {figures['intervals']} intervals of {args.warmup} steps "
             f"after {args.warmup} warm-up steps | {rate(samples)} |",
             f"| frames/s | {rate(samples * args.frames)} |",
             f"| share of the time waiting for data | {100 * figures['data_wait_share']:.1f}% |",
             f"| peak GPU memory, GiB | {memory} |",
             f"| TFLOP per step (forward + backward) | {flops / 1e12:.3f} |",
             f"| of which the teachers' scoring from the cache | {100 * teacher_flops / flops:.2g}% |",
             f"| achieved TFLOP/s | {rate(achieved)} |",
             f"| peak TFLOP/s, matrix products in {kind} | {peak_text} |",
             f"| MFU | {mfu} |", "",
             f"Taught by {' + '.join(P.teachers)} from float16 feature caches (teacher_mode: cached); the "
             f"training settings of {args.params}. FLOPs counted on an extra step (FlopCounterMode)."]
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
    parser.add_argument("--batch", type=int,
                        help="captions (and videos) per step; default the params' batch_size on a GPU, 4 on CPU")
    parser.add_argument("--steps", type=int, help="counted steps after the warm-up, a multiple of --warmup; "
                                                  "default 20 on a GPU, 4 on CPU")
    parser.add_argument("--warmup", type=int, help="uncounted steps first; default 5 on a GPU, 2 on CPU")
    parser.add_argument("--frames", type=int, help="frames per video; default the params' max_frames")
    parser.add_argument("--words", type=int, help="words per caption; default the params' max_words")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false", help="full fp32 matrix products on CUDA")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--grad-accumulation", type=int, default=1)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--workers", default="auto", help="loader worker processes (default: auto)")
    parser.add_argument("--videos", type=int, default=64, help="synthetic videos in the frame cache")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s for MFU (overrides the table)")
    parser.add_argument("--out", default="results/benchmarks/train_throughput.md")
    args = parser.parse_args()
    args.workers = args.workers if args.workers == "auto" else int(args.workers)
    return args


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    P = load_params(args.params, {"clip_model": args.model, "clip_pretrained": ""})
    on_gpu = device.type == "cuda"
    args.batch = args.batch or (P.batch_size if on_gpu else 4)
    args.warmup = args.warmup or (5 if on_gpu else 2)
    args.steps = args.steps or (20 if on_gpu else 4)
    if args.steps % args.warmup:
        raise SystemExit(f"--steps {args.steps} must be a multiple of --warmup {args.warmup}")
    args.frames = args.frames or P.max_frames
    args.words = args.words or P.max_words
    P = dataclasses.replace(P, max_frames=args.frames, max_words=args.words)
    size = image_size_of(args.model)
    config = train_config(P, args, device)
    args.workers_used = loader_workers(config.num_workers, device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = (args.warmup + args.steps) * args.batch
        dataset = frame_cache_pairs(folder, min(args.videos, pairs), pairs, args.frames, size, args.words)
        objective = teaching_objective(P, args, dataset, device, folder / "teachers")
        student = build_student(P, args.model).to(device)
        flops, teacher_flops = counted_flops(student, objective, dataset, config, device)
        train(student, dataset, objective, config, folder / "run", desc="benchmark")
        figures = measured(folder / "run", args.warmup)

    kind = matmul_precision(device, config)
    if args.peak_tflops:
        peak, source = args.peak_tflops, "given with --peak-tflops"
    else:
        peak, source = peak_tflops(device_name(device), kind) if on_gpu else (None, "")
    lines = throughput_table(args, P, config, size, figures, flops, teacher_flops, peak, source, kind, device)
    lines += [""] + epoch_table(args, figures["samples_per_s"], device)
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
