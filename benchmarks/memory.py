"""The memory estimate (tclib.memory) against the measured peak of real training steps on the CPU, at
several shapes, with and without activation checkpointing: the table behind the ±25 % of
tests/test_memory.py, at larger shapes than the tests afford (ViT-B/32 takes a minute a step here).

What is measured is one training step of a seqTransf + AFA student (random weights): the contrastive
loss, backward, clipping, AdamW; every live tensor storage is counted (tclib.memory.measure_student_step).

    .venv/bin/python benchmarks/memory.py                      # tclib-tiny, tclib-tiny-224, ViT-B-32 (2 shapes)
    .venv/bin/python benchmarks/memory.py --precision bf16
"""

from __future__ import annotations

import argparse

from report import write_report  # benchmarks/ is a folder of scripts

from tclib.memory import estimate_training_memory, measure_student_step

MiB = 2**20
SHAPES = [("tclib-tiny", 128, 12, 32), ("tclib-tiny-224", 16, 12, 32), ("ViT-B-32", 4, 8, 32), ("ViT-B-32", 16, 12, 32)]


def row(shape: tuple[str, int, int, int], precision: str, checkpointing: bool) -> dict:
    measured = measure_student_step(*shape, precision=precision, grad_checkpointing=checkpointing)
    estimate = estimate_training_memory(*shape, precision=precision, grad_checkpointing=checkpointing,
                                        foreach_optimizer=False)
    return {"measured": measured, "estimate": estimate.peak, "backward": estimate.moments()["backward"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--out", default="results/benchmarks/memory.md")
    args = parser.parse_args()
    lines = [f"## A student's training step on the CPU, {args.precision}: measured peak against tclib.memory's "
             "estimate", "", "| model | videos x frames x words | checkpointing | measured MiB | estimated MiB | "
             "estimate / measured "
             "| estimated at the start of backward, MiB |", "|---|---|---|---|---|---|---|"]
    for shape in SHAPES:
        for checkpointing in (False, True):
            r = row(shape, args.precision, checkpointing)
            lines.append(f"| {shape[0]} | {shape[1]} x {shape[2]} x {shape[3]} | {'on' if checkpointing else 'off'} | "
                         f"{r['measured'] / MiB:,.0f} | {r['estimate'] / MiB:,.0f} | "
                         f"{r['estimate'] / r['measured']:.2f} | {r['backward'] / MiB:,.0f} |")
            print(lines[-1], flush=True)
    lines += ["", "The peak is the larger of the start of backward (activations) and the optimizer step (weights, "
              "gradients, AdamW's state): where the second makes it, checkpointing cannot lower it."]
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
