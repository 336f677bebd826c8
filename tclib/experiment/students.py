"""03 · The student stage: every run of `runs` (tclib.experiment.runs) for every seed, trained here
(over `gpus` processes with torchrun) or, for a run in `student_checkpoints`, given as a file:

    results/<exp>/students/<run>/<fingerprint>/run/model.pt
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ParamsError
from ..files import write_text
from ..models import CLIP4Clip, load_checkpoint, load_clip
from ..params import Params
from ..stages import Stage, StageInputs
from ..teaching import ContrastiveObjective, TeachingObjective
from ..train import resolve_device, seed_everything, train
from .data import MODEL_FORMAT, Data, Identities, train_dataset
from .runs import RunSpec, parse_run
from .teachers import Teachers, teacher_scores
from .training import TrainingInputs, training_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentInputs(StageInputs):
    """A student run for one seed. A meanP student with frozen CLIP towers has nothing to train and
    reads only the backbone (one model for every seed); the temporal head, AFA and teaching add
    what they read, and a taught student its teachers' fingerprints."""

    format: int
    temporal: str
    afa: bool
    backbone: str
    temporal_layers: int | None = None  # seqTransf
    afa_temperature: float | None = None  # AFA
    mask_padded_frames: bool | None = None  # AFA
    seed: int | None = None  # trained
    train_data: str | None = None  # trained
    max_words: int | None = None  # trained
    training: TrainingInputs | None = None  # trained
    teachers: dict | None = None  # taught: {teacher: its stage's fingerprint}
    teacher_mode: str | None = None  # taught
    coarse_method: str | None = None  # taught
    loss_weights: dict | None = None  # taught: the weights of the terms it uses
    fine_method: str | None = None  # taught at the frame level
    teachers_fp32: bool | None = None  # taught in bf16: the teachers score in float32 (before: in the student's bf16)


def student_inputs(P: Params, ids: Identities, teachers: dict[str, str], spec: RunSpec, seed: int) -> StudentInputs:
    """The inputs of a run for one seed, `teachers` the fingerprints of its teachers' stages."""
    trains = P.clip_lr_scale > 0 or spec.temporal != "meanP" or spec.afa
    used = ("contrastive", "coarse", "fine") if spec.fine else ("contrastive", "coarse")
    return StudentInputs(
        format=MODEL_FORMAT, temporal=spec.temporal, afa=spec.afa, backbone=ids.backbone,
        temporal_layers=P.temporal_layers if spec.temporal == "seqTransf" else None,
        afa_temperature=P.afa_temperature if spec.afa else None,
        mask_padded_frames=P.mask_padded_frames if spec.afa else None,
        seed=seed if trains else None, train_data=ids.train if trains else None,
        max_words=P.max_words if trains else None,
        training=student_training(P, spec) if trains else None,
        teachers=teachers if spec.coarse else None,
        teacher_mode=P.teacher_mode if spec.coarse else None,
        coarse_method=P.coarse_method if spec.coarse else None,
        loss_weights={k: v for k, v in P.loss_weights.items() if k in used} if spec.coarse else None,
        fine_method=P.fine_method if spec.fine else None,
        teachers_fp32=True if spec.coarse and trains and P.precision == "bf16" else None)


def student_training(P: Params, spec: RunSpec) -> TrainingInputs:
    return training_inputs(P, P.epochs, P.lr, student=True, afa=spec.afa)


def student_stage(P: Params, data: Data, teachers: Teachers, run: str, seed: int) -> Stage:
    """The run's stage for one seed; `teachers`: 02's result (tclib.experiment.teachers.prepared_teachers)."""
    spec = parse_run(run)
    taught_by = {t: teachers[(t, seed)].fingerprint for t in spec.teachers_of(P.teachers)}
    return Stage(P.exp_dir / "students" / run, student_inputs(P, data.ids, taught_by, spec, seed))


def new_student(P: Params, data: Data, run: str) -> CLIP4Clip:
    spec = parse_run(run)
    return CLIP4Clip(load_clip(P.clip_model, data.clip_pretrained), temporal=spec.temporal, afa=spec.afa,
                     temporal_layers=P.temporal_layers, afa_temperature=P.afa_temperature,
                     mask_padding=P.mask_padded_frames)


def student_seeds(P: Params, run: str) -> list[int | None]:
    """The seeds a run has: one model (seed None) when it comes from student_checkpoints."""
    return [None] if run in P.student_checkpoints else list(P.seeds)


def load_student(P: Params, data: Data, teachers: Teachers, run: str, seed: int | None) -> CLIP4Clip:
    """A trained student, or the file student_checkpoints gives for `run` (reference key names accepted)."""
    student = new_student(P, data, run)
    path: str | Path
    if run in P.student_checkpoints:
        path = P.student_checkpoints[run]
    else:
        if seed is None:
            raise ParamsError(f"{run} of {P.exp} is trained for each seed: give one of {P.seeds}")
        path = student_stage(P, data, teachers, run, seed).directory / "run" / "model.pt"
    load_checkpoint(student, path)
    return student.eval()


def train_students(P: Params, data: Data, teachers: Teachers) -> None:
    """Train every run of P.runs for every seed, taught by `teachers` (02's result: prepare_teachers, or
    prepared_teachers read back); runs given in student_checkpoints are not trained: their file is
    evaluated instead."""
    for run in P.runs:
        if run in P.student_checkpoints:
            log.info("%s: evaluated from %s, not trained", run, P.student_checkpoints[run])
            continue
        for seed in P.seeds:
            stage = student_stage(P, data, teachers, run, seed)
            if stage.finished():
                continue
            stage.begin()
            if P.gpus > 1:
                launch_student_training(P, run, seed, stage.directory)
            else:
                train_student(P, data, teachers, run, seed, stage.directory)
            stage.finish()


def train_student(P: Params, data: Data, teachers: Teachers, run: str, seed: int, directory: Path) -> None:
    """Train one run for one seed into `directory`/run (in each process when launched by torchrun)."""
    spec = parse_run(run)
    device = resolve_device(P.device)
    objective: TeachingObjective | ContrastiveObjective
    if spec.coarse:
        scores = teacher_scores(P, data, [teachers[(t, seed)] for t in spec.teachers_of(P.teachers)], device)
        objective = TeachingObjective(scores, P.coarse_method, P.fine_method, use_fine=spec.fine,
                                      weights=P.loss_weights, beta=P.beta)
    else:
        objective = ContrastiveObjective(P.beta)
    seed_everything(seed)
    student = new_student(P, data, run)
    train(student, train_dataset(P, data), objective, student_training(P, spec).train_config(seed, P),
          directory / "run", desc=f"{run} seed {seed}")


def launch_student_training(P: Params, run: str, seed: int, directory: Path) -> None:
    """Train one run over P.gpus processes: `torchrun --standalone --nproc_per_node=<gpus> -m
    tclib.train_worker`, its output shown here line by line; an error if a process fails. (Params
    refuse gpus > 1 without teacher_mode: cached.)"""
    directory.mkdir(parents=True, exist_ok=True)
    job = directory / "launch.json"
    write_text(job, json.dumps({"params": dataclasses.asdict(P), "run": run, "seed": seed,
                                "directory": str(directory)}, default=str))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={P.gpus}",
               "-m", "tclib.train_worker", str(job)]
    log.info("%s seed %d: training over %d processes: %s", run, seed, P.gpus, " ".join(command))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            print(line, end="", flush=True)
    if process.returncode != 0:
        raise RuntimeError(f"{run} seed {seed}: torchrun exited with code {process.returncode}; its output is above")
