"""What the training loop reads of the params: the `training` inputs of the teacher and student stages.

`TrainingInputs` is part of a stage's inputs (so a change of any of its fields trains again), and the
loop's `TrainConfig` is built from it, adding only what changes how fast it trains, not what it
trains (`SPEED_ONLY`: the loader's worker processes, the device, activation checkpointing, compiling,
how often the losses are read back), and the stage's seed.

TF32 changes the numbers where it applies, fp32 matrix products on CUDA, so it is an input of the
runs that may train on a GPU (`device` other than cpu), whatever machine computes the fingerprint:
a project trained on GPUs and opened on a laptop finds its stages. With `device: cpu` or
`tf32: false` the inputs are what they were before TF32 existed (the demo sets `tf32: false`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..params import Params
from ..stages import StageInputs
from ..train import TrainConfig

SPEED_ONLY = ("num_workers", "device", "grad_checkpointing", "compile", "log_every")  # how fast, not what


@dataclass(frozen=True)
class TrainingInputs(StageInputs):
    epochs: int
    lr: float
    batch_size: int
    clip_lr_scale: float
    weight_decay: float
    warmup_proportion: float
    grad_clip: float
    beta: float  # the temperature of the losses (tclib.teaching), not of the loop
    afa_lr_scale: float | None = None  # students with AFA only
    precision: str = "fp32"  # students only; teachers train in fp32
    grad_accumulation: int = 1  # students only
    exact_accumulation: bool = False  # grad_accumulation > 1 gives the whole batch's gradients (before: each
    #                                   micro-batch its own negatives)
    tf32: bool = False  # fp32 matrix products in TF32 (on CUDA)

    def train_config(self, seed: int, P: Params) -> TrainConfig:
        """The loop's settings: these inputs, the seed, and the params' SPEED_ONLY fields."""
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        given = {k: v for k, v in dataclasses.asdict(self).items() if k in names and v is not None}
        return TrainConfig(**given, seed=seed, **{key: getattr(P, key) for key in SPEED_ONLY})


def training_inputs(P: Params, epochs: int, lr: float, student: bool = False, afa: bool = False) -> TrainingInputs:
    """The training inputs of a teacher (`student` False: fp32, whole batches) or of a student."""
    accumulation = P.grad_accumulation if student else 1
    return TrainingInputs(epochs=epochs, lr=lr, batch_size=P.batch_size, clip_lr_scale=P.clip_lr_scale,
                          weight_decay=P.weight_decay, warmup_proportion=P.warmup_proportion, grad_clip=P.grad_clip,
                          beta=P.beta, afa_lr_scale=P.afa_lr_scale if afa else None,
                          precision=P.precision if student else "fp32", grad_accumulation=accumulation,
                          exact_accumulation=accumulation > 1, tf32=P.tf32 and P.device != "cpu")
