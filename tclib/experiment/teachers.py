"""02 · The teacher stage: each teacher of `teachers`, per seed, loaded from its checkpoint
(`teacher_checkpoints`: one model for every seed) or trained here, then (with `teacher_mode: cached`)
its text and video features on the training set cached in the teacher's folder:

    results/<exp>/teachers/<name>/<fingerprint>/run/model.pt
    results/<exp>/teachers/<name>/<fingerprint>/features/<key>/   (tclib.scoring)
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import PairDataset
from ..errors import CheckpointError
from ..files import content_signature
from ..models import Teacher, build_teacher, load_checkpoint, load_clip
from ..models.checkpoint import save_checkpoint
from ..params import Params
from ..project import relative_to_root
from ..scoring import (
    MANIFEST,
    CachedTeacherScores,
    OnlineTeacherScores,
    file_sha256,
    read_teacher_features,
    strings_sha256,
    write_teacher_features,
)
from ..stages import RECORD, Stage, StageInputs, fingerprint
from ..teaching import ContrastiveObjective
from ..train import resolve_device, seed_everything, train
from .data import MODEL_FORMAT, Data, Identities, train_dataset
from .training import TrainingInputs, training_inputs

log = logging.getLogger(__name__)

# The feature cache's layout, by the name it had when written through memory maps (kept: it keys the folders
# and is checked in every manifest; the .npy files are the same).
TEACHER_FEATURES_FORMAT = "float16 memmap, training videos only"


@dataclass(frozen=True)
class TeacherInputs(StageInputs):
    """A teacher, loaded from its checkpoint (`checkpoint`) or trained here (`seed`, `train_data`, `training`)."""

    format: int
    teacher: str
    backbone: str
    max_words: int
    max_frames: int
    temporal_layers: int
    mask_padded_frames: bool
    options: dict  # its teacher_options
    checkpoint: Any = None  # the checkpoint file's identity
    seed: int | None = None
    train_data: str | None = None
    training: TrainingInputs | None = None


def teacher_inputs(P: Params, ids: Identities, name: str, seed: int) -> TeacherInputs:
    common = TeacherInputs(format=MODEL_FORMAT, teacher=name, backbone=ids.backbone, max_words=P.max_words,
                           max_frames=P.max_frames, temporal_layers=P.temporal_layers,
                           mask_padded_frames=P.mask_padded_frames, options=P.teacher_options.get(name, {}))
    checkpoint = P.teacher_checkpoints.get(name, "")
    if checkpoint:
        return dataclasses.replace(common, checkpoint=content_signature(checkpoint))
    return dataclasses.replace(common, seed=seed, train_data=ids.train,
                               training=training_inputs(P, P.teacher_epochs, P.teacher_lr))


def teacher_stage(P: Params, data: Data, name: str, seed: int) -> Stage:
    return Stage(P.exp_dir / "teachers" / name, teacher_inputs(P, data.ids, name, seed))


def features_key(ids: Identities) -> str:
    return fingerprint(ids.train, TEACHER_FEATURES_FORMAT)


@dataclass(frozen=True)
class PreparedTeacher:
    """02's result for one teacher and seed, what the student stage receives: the teacher's folder and
    fingerprint, and where its feature cache of this training set lies (teacher_mode: cached)."""

    name: str
    seed: int
    directory: Path
    fingerprint: str
    features: Path

    @property
    def model_file(self) -> Path:
        return self.directory / "run" / "model.pt"

    @property
    def finished(self) -> bool:
        return (self.directory / RECORD).is_file()


Teachers = dict[tuple[str, int], PreparedTeacher]  # by (name, seed)


def prepared_teachers(P: Params, data: Data) -> Teachers:
    """02's result read back without building anything (as prepared_data reads 01's): every teacher
    and seed of the params, prepared or not (`finished`)."""
    return {(name, seed): prepared_teacher(teacher_stage(P, data, name, seed), name, seed, data.ids)
            for name in P.teachers for seed in P.seeds}


def prepared_teacher(stage: Stage, name: str, seed: int, ids: Identities) -> PreparedTeacher:
    """The teacher of `stage`: its folder, fingerprint and the feature cache of the training set `ids` names."""
    return PreparedTeacher(name, seed, stage.directory, stage.fingerprint,
                           stage.directory / "features" / features_key(ids))


def new_teacher(P: Params, data: Data, name: str) -> Teacher:
    return build_teacher(name, load_clip(P.clip_model, data.clip_pretrained), P.max_words, P.max_frames,
                         P.temporal_layers, mask_padding=P.mask_padded_frames, **P.teacher_options.get(name, {}))


def load_teacher(P: Params, data: Data, teacher: PreparedTeacher) -> Teacher:
    if not teacher.finished:
        raise CheckpointError(f"teacher {teacher.name} seed {teacher.seed} of {P.exp} is not prepared ({teacher.directory}):"
                         " run 02_teacher_scoring first")
    model = new_teacher(P, data, teacher.name)
    load_checkpoint(model, teacher.model_file)
    return model.eval()


def prepare_teachers(P: Params, data: Data) -> Teachers:
    """For each teacher and seed: load its checkpoint (teacher_checkpoints) or train it, then (with
    teacher_mode: cached) cache its features on the training set."""
    device = resolve_device(P.device)
    dataset = train_dataset(P, data)
    teachers = {}
    for name in P.teachers:
        for seed in P.seeds:
            stage = teacher_stage(P, data, name, seed)
            teachers[(name, seed)] = prepared = prepared_teacher(stage, name, seed, data.ids)
            model = None
            if not stage.finished():
                stage.begin()
                model = make_teacher(P, data, name, seed, dataset, stage)
            if P.teacher_mode == "cached":
                cache_teacher_features(P, data, prepared, dataset, model, device)
    return teachers


def make_teacher(P: Params, data: Data, name: str, seed: int, dataset: PairDataset, stage: Stage) -> Teacher:
    """Load the teacher's checkpoint or train it, into the stage's folder (then finished)."""
    seed_everything(seed)
    teacher = new_teacher(P, data, name)
    checkpoint = P.teacher_checkpoints.get(name, "")
    if checkpoint:
        load_checkpoint(teacher, checkpoint)
        save_checkpoint(teacher.state_dict(), stage.directory / "run" / "model.pt")
    else:
        config = training_inputs(P, P.teacher_epochs, P.teacher_lr).train_config(seed, P)
        teacher = train(teacher, dataset, ContrastiveObjective(P.beta), config, stage.directory / "run",
                        desc=f"{name} seed {seed}")
    stage.finish(checkpoint=relative_to_root(checkpoint) if checkpoint else "trained here")
    return teacher


# ----------------------------------------------------------------------------- the feature cache


def teacher_cache_manifest(P: Params, data: Data, teacher: PreparedTeacher, dataset: PairDataset) -> dict:
    """What a teacher feature cache must have been computed from, field by field."""
    return {"teacher": teacher.name, "checkpoint_sha256": file_sha256(teacher.model_file),
            "clip_model": P.clip_model, "backbone": data.ids.backbone,
            "sampling": data.cache.sampling.as_dict(),
            "max_words": P.max_words, "mask_padded_frames": P.mask_padded_frames,
            "teacher_options": P.teacher_options.get(teacher.name, {}), "dataset": P.dataset,
            "split": P.train_split, "captions_sha256": strings_sha256(dataset.captions),
            "videos_sha256": strings_sha256(dataset.video_ids), "format": TEACHER_FEATURES_FORMAT}


def cache_teacher_features(P: Params, data: Data, teacher: PreparedTeacher, dataset: PairDataset,
                           model: Teacher | None, device: torch.device) -> Path:
    """The teacher's feature cache of the training set, written unless it is there already."""
    manifest = teacher_cache_manifest(P, data, teacher, dataset)
    if (teacher.features / MANIFEST).is_file():
        read_teacher_features(teacher.features, manifest)  # refuses a cache made for anything else
        return teacher.features
    model = model or load_teacher(P, data, teacher)
    write_teacher_features(teacher.features, model, dataset.tokens, data.cache.frames, data.cache.mask,
                           sorted(set(dataset.video_index)), P.eval_batch_size, device, manifest)
    return teacher.features


def teacher_scores(P: Params, data: Data, teachers: list[PreparedTeacher], device: torch.device
                   ) -> CachedTeacherScores | OnlineTeacherScores:
    """The scorer of a TeachCLIP run: cached features or the teachers' forward on every batch."""
    models = [load_teacher(P, data, t).to(device) for t in teachers]
    if P.teacher_mode == "online":
        return OnlineTeacherScores(models)
    dataset = train_dataset(P, data)
    features = [read_teacher_features(t.features, teacher_cache_manifest(P, data, t, dataset)) for t in teachers]
    return CachedTeacherScores(models, features)
