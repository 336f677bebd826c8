"""The model an index is encoded with: a trained student of an experiment (a run and seed, or a file of
`student_checkpoints`), sampled exactly as it was trained (its frame sampling, image size and words).

A StudentSpec is what the index's manifest records of it. Its `identity` (the architecture, the
sampling, the words and the content signatures of the weights) is what the vectors depend on: an index
is only ever searched, or grown, with a student of the same identity; where the spec's files lie does
not matter (paths are kept relative to the project root).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import Sampling
from ..errors import ParamsError, TclibError
from ..files import content_signature
from ..models import CLIP4Clip, Tokenizer, load_checkpoint, load_clip
from ..params import Params
from ..project import relative_to_root, resolve_path
from ..stages import fingerprint

DESCRIPTIVE = ("exp", "run", "seed", "checkpoint", "clip_pretrained")  # fields that name it, not what it computes


class ModelMismatch(TclibError):
    """An index searched or grown with a student other than the one it was encoded with."""


@dataclass(frozen=True)
class StudentSpec:
    exp: str
    run: str
    seed: int | None  # None: a file of student_checkpoints
    checkpoint: str  # the student's weights: relative to the project root when under it
    clip_model: str
    clip_pretrained: str  # the CLIP weights it was built on: a pretrained tag, or a file
    temporal: str
    afa: bool
    temporal_layers: int
    afa_temperature: float
    mask_padding: bool
    max_words: int
    sampling: dict  # Sampling.as_dict()
    weights: dict  # content signatures of the checkpoint (and of clip_pretrained when it is a file)

    @property
    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in DESCRIPTIVE}

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity)

    @property
    def frame_sampling(self) -> Sampling:
        return Sampling(**self.sampling)

    def tokenizer(self) -> Tokenizer:
        return Tokenizer(self.max_words)

    def load(self) -> CLIP4Clip:
        """The student, in eval mode; ModelMismatch when its files no longer hold the weights recorded."""
        now = spec_weights(self.checkpoint, self.clip_pretrained)
        if now != self.weights:
            raise ModelMismatch(f"the student's weights changed since the index was made: {self.checkpoint} "
                                f"(model field 'weights': {self.weights} then, {now} now)")
        student = CLIP4Clip(load_clip(self.clip_model, _file_or_tag(self.clip_pretrained)), temporal=self.temporal,
                            afa=self.afa, temporal_layers=self.temporal_layers, afa_temperature=self.afa_temperature,
                            mask_padding=self.mask_padding)
        load_checkpoint(student, resolve_path(self.checkpoint))
        return student.eval()

    def differences(self, other: StudentSpec) -> list[str]:
        """The identity fields in which `other` differs from this spec."""
        mine, theirs = self.identity, other.identity
        return [key for key in mine if mine[key] != theirs.get(key)]

    def check_same(self, other: StudentSpec, where: str) -> None:
        """ModelMismatch naming the fields when `other` would encode other vectors than this spec."""
        changed = self.differences(other)
        if changed:
            raise ModelMismatch(f"{where} was made with another model: it differs in model field(s) "
                                f"{', '.join(changed)} ({self.run} seed {self.seed} of {self.exp} then, "
                                f"{other.run} seed {other.seed} of {other.exp} now); use another index folder")


def _file_or_tag(value: str) -> str:
    """clip_pretrained as load_clip takes it: a file under the project root resolved, a tag as it is."""
    if value and ("/" in value or Path(value).suffix):
        return resolve_path(value)
    return value


def spec_weights(checkpoint: str, clip_pretrained: str) -> dict:
    weights = {"checkpoint": content_signature(resolve_path(checkpoint))}
    if clip_pretrained and Path(_file_or_tag(clip_pretrained)).is_file():
        weights["clip_pretrained"] = content_signature(_file_or_tag(clip_pretrained))
    return weights


def student_spec(P: Params, run: str | None = None, seed: int | None = None, data=None) -> StudentSpec:
    """The trained student `run` (default: the params' last run) of seed `seed` (default: the first),
    or the file student_checkpoints gives for it. The experiment must have trained it (ParamsError
    naming the stage otherwise). `data`: the experiment's prepared data when the caller holds it (else
    read here)."""
    from ..experiment.data import prepared_data, sampling_of
    from ..experiment.runs import parse_run
    from ..experiment.students import student_stage
    from ..experiment.teachers import prepared_teachers

    run = run or P.runs[-1]
    if run not in P.runs:
        raise ParamsError(f"run {run!r} is not one of the runs of {P.exp}: {P.runs}")
    spec = parse_run(run)
    data = prepared_data(P) if data is None else data
    if data is None:
        raise ParamsError(f"the data of {P.exp} is not prepared: run its 01_data_prep (or tclib reproduce) first")
    if run in P.student_checkpoints:
        checkpoint, seed = P.student_checkpoints[run], None
    else:
        seed = P.seeds[0] if seed is None else seed
        if seed not in P.seeds:
            raise ParamsError(f"seed {seed} is not one of the seeds of {P.exp}: {P.seeds}")
        stage = student_stage(P, data, prepared_teachers(P, data), run, seed)
        if not stage.finished():
            raise ParamsError(f"{run} seed {seed} of {P.exp} is not trained yet ({stage.directory}): train it first")
        checkpoint = str(stage.directory / "run" / "model.pt")
    checkpoint, clip = relative_to_root(checkpoint), data.clip_pretrained
    clip = relative_to_root(clip) if clip and Path(clip).is_file() else clip
    return StudentSpec(exp=P.exp, run=run, seed=seed, checkpoint=checkpoint, clip_model=P.clip_model,
                       clip_pretrained=clip, temporal=spec.temporal, afa=spec.afa, temporal_layers=P.temporal_layers,
                       afa_temperature=P.afa_temperature, mask_padding=P.mask_padded_frames, max_words=P.max_words,
                       sampling=sampling_of(P).as_dict(), weights=spec_weights(checkpoint, clip))


def spec_from_record(record: dict) -> StudentSpec:
    return StudentSpec(**record)
