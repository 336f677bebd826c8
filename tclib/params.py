"""Experiment parameters: one flat schema shared by every notebook and by `tclib reproduce`.

A params file (`params/<exp>.yaml`) is a plain papermill parameter file: a flat mapping from
the keys below to values. `load_params` reads one, rejects unknown keys and wrong types (naming
the file and the key), and fills in defaults. The defaults are the reference MSR-VTT settings
(CLIP4Clip / TeachCLIP, ViT-B/32); `params/demo.yaml` overrides what the demo needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ParamsError

TEACHCLIP_RUNS = ("clip4clip-meanP", "clip4clip-seqTransf", "teachclip-coarse", "teachclip")
TEACHER_MODES = ("cached", "online")


@dataclass(frozen=True)
class Params:
    """Every parameter of an experiment. Field comments say what each one means."""

    # --- experiment -------------------------------------------------------------------------
    exp: str = "msrvtt-9k"  # name; results go to <results_dir>/<exp>/
    results_dir: str = "results"
    seeds: list = field(default_factory=lambda: [42])  # one run per seed (table: mean ± std)
    device: str = "auto"  # "auto" (cuda when present), "cpu", "cuda", "cuda:1", ...

    # --- data ----------------------------------------------------------------------------------
    dataset: str = "msrvtt"  # a reader of tclib.data.READERS: msrvtt, msvd, didemo, activitynet, vatex, teachclip
    data_root: str = "data/msrvtt"  # the data set's folder (annotations in it or in Annotations/)
    videos_dir: str = ""  # where the videos are, when not under data_root
    train_split: str = "train"
    test_split: str = "test"
    data_options: dict = field(default_factory=dict)  # reader options, e.g. {train_csv: MSRVTT_train.7k.csv}
    frame_cache: bool = True  # decode every video once into results/<exp>/frames; false: decode on the fly
    synthetic: bool = False  # write the synthetic MSR-VTT-layout data set into data_root first
    synthetic_train_videos: int = 240
    synthetic_test_videos: int = 100
    synthetic_frame_size: int = 64
    synthetic_seed: int = 0
    max_words: int = 32
    max_frames: int = 12
    framerate: int = 1  # frames sampled per second, before max_frames are picked
    slice_framepos: int = 2  # 0 head, 1 tail, 2 uniform
    decode_workers: int = 4

    # --- backbone ------------------------------------------------------------------------------
    clip_model: str = "ViT-B-32-quickgelu"  # any open_clip model name, or "tclib-tiny"; OpenAI weights need -quickgelu
    clip_pretrained: str = "openai"  # open_clip pretrained tag, a local checkpoint file, or ""
    pretrain_steps: int = 0  # >0: pretrain the backbone on synthetic image-caption pairs (demo)
    pretrain_batch_size: int = 128
    pretrain_lr: float = 1e-3

    # --- student -------------------------------------------------------------------------------
    temporal_layers: int = 4  # seqTransf depth (reference cross_num_hidden_layers)
    afa_temperature: float = 0.1
    mask_padded_frames: bool = False  # false: padded frame slots share the softmaxes as in the reference
    runs: list = field(default_factory=lambda: list(TEACHCLIP_RUNS))  # student variants; "teachclip:xclip+ts2net"
    student_checkpoints: dict = field(default_factory=dict)  # run -> file: evaluate that student, don't train it

    # --- teachers ------------------------------------------------------------------------------
    teachers: list = field(default_factory=lambda: ["xclip", "ts2net"])  # prepared, evaluated, and teaching
    teacher_checkpoints: dict = field(default_factory=dict)  # teacher name -> file; {} trains them
    teacher_mode: str = "cached"  # cached: teacher features computed once; online: teachers run on every batch
    teacher_options: dict = field(default_factory=dict)  # teacher -> constructor options, e.g. {ts2net: {token_shift: true}}
    teacher_epochs: int = 5
    teacher_lr: float = 1e-4

    # --- training ------------------------------------------------------------------------------
    epochs: int = 5
    batch_size: int = 120
    lr: float = 1e-4  # new layers
    clip_lr_scale: float = 1e-3  # CLIP towers train at lr * clip_lr_scale; 0 freezes them
    afa_lr_scale: float = 10.0  # AFA trains at lr * afa_lr_scale (reference: 10)
    weight_decay: float = 0.2
    warmup_proportion: float = 0.1
    grad_clip: float = 1.0
    beta: float = 1.0  # temperature dividing student and teacher logits during teaching
    coarse_method: str = "pear"
    fine_method: str = "ce"
    loss_weights: dict = field(default_factory=dict)  # {} = reference weights for coarse_method
    num_workers: int = 0  # data loader worker processes

    # --- evaluation and plots ------------------------------------------------------------------
    eval_batch_size: int = 64
    plot_videos: int = 4

    def __post_init__(self) -> None:
        check_values(self, source="<params>")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "<params>") -> "Params":
        """Build from a mapping, rejecting unknown keys and wrong types; `source` names the origin."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ParamsError(
                f"{source}: unknown params key(s) {', '.join(map(repr, unknown))}; "
                f"known keys are listed in tclib/params.py"
            )
        checked = {}
        for key, value in values.items():
            checked[key] = _coerce(key, value, _field_type(known[key]), source)
        params = cls.__new__(cls)
        defaults = {f.name: _default(f) for f in dataclasses.fields(cls)}
        for key, value in {**defaults, **checked}.items():
            object.__setattr__(params, key, value)
        check_values(params, source)
        return params

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.field_names()}

    def values(self, keys: list[str]) -> list[Any]:
        """The values of `keys`, in order: what a stage's fingerprint is made of."""
        return [getattr(self, key) for key in keys]

    @property
    def exp_dir(self) -> Path:
        return Path(self.results_dir) / self.exp


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return f.default


def _field_type(f: dataclasses.Field) -> type:
    return {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}[str(f.type)]


def _coerce(key: str, value: Any, expected: type, source: str) -> Any:
    """Accept a value of the expected type; ints are fine where floats are expected."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and value is None:
        return ""
    if expected is dict and value is None:
        return {}
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise ParamsError(
        f"{source}: params key {key!r} must be {expected.__name__}, got {type(value).__name__} {value!r}"
    )


def check_values(params: Params, source: str) -> None:
    """Checks that go beyond types: allowed choices and positive sizes."""
    from .losses import COARSE_METHODS, FINE_METHODS

    def bad(key: str, why: str) -> ParamsError:
        return ParamsError(f"{source}: params key {key!r} {why}, got {getattr(params, key)!r}")

    if params.coarse_method not in COARSE_METHODS:
        raise bad("coarse_method", f"must be one of {COARSE_METHODS}")
    if params.fine_method not in FINE_METHODS:
        raise bad("fine_method", f"must be one of {FINE_METHODS}")
    if params.slice_framepos not in (0, 1, 2):
        raise bad("slice_framepos", "must be 0 (head), 1 (tail) or 2 (uniform)")
    from .data.readers import READERS

    if params.dataset not in READERS:
        raise bad("dataset", f"must be one of {sorted(READERS)}")
    for key in ("max_words", "max_frames", "batch_size", "eval_batch_size", "framerate"):
        if getattr(params, key) <= 0:
            raise bad(key, "must be positive")
    from .models.teachers import TEACHERS

    unknown_teachers = [t for t in params.teachers if t not in TEACHERS]
    if unknown_teachers or len(set(params.teachers)) != len(params.teachers):
        raise bad("teachers", f"must name distinct teachers of {sorted(TEACHERS)}")
    for run in params.runs:
        base, _, taught_by = run.partition(":")
        if base not in TEACHCLIP_RUNS:
            raise bad("runs", f"may only name {TEACHCLIP_RUNS}, a TeachCLIP run optionally followed by "
                              f"':teacher+teacher' (e.g. teachclip:xclip+ts2net)")
        if taught_by and not base.startswith("teachclip"):
            raise bad("runs", f"{run!r}: only teachclip runs take ':teacher+teacher'")
        if taught_by and any(t not in params.teachers for t in taught_by.split("+")):
            raise bad("runs", f"{run!r}: the teachers after ':' must each be one of teachers {params.teachers}")
    if len(set(params.runs)) != len(params.runs):
        raise bad("runs", "must not name a run twice")
    unknown = sorted(set(params.student_checkpoints) - set(params.runs))
    if unknown:
        raise bad("student_checkpoints", f"names runs {unknown} that are not in runs {params.runs}")
    unknown = sorted(set(params.teacher_checkpoints) - set(params.teachers))
    if unknown:
        raise bad("teacher_checkpoints", f"names teachers {unknown} that are not in teachers {params.teachers}")
    for name, options in params.teacher_options.items():
        if name not in params.teachers:
            raise bad("teacher_options", f"names teacher {name!r} that is not in teachers {params.teachers}")
        allowed = TEACHERS[name].options()
        if not isinstance(options, dict) or set(options) - set(allowed):
            raise bad("teacher_options", f"{name!r} takes a mapping of its options {sorted(allowed)}")
        for option, value in options.items():
            if type(value) is not type(allowed[option]):
                raise bad("teacher_options", f"{name}.{option} must be {type(allowed[option]).__name__}")
    if params.teacher_mode not in TEACHER_MODES:
        raise bad("teacher_mode", f"must be one of {TEACHER_MODES}")
    if not params.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in params.seeds):
        raise bad("seeds", "must be a non-empty list of integers")
    unknown_weights = set(params.loss_weights) - {"contrastive", "coarse", "fine"}
    if unknown_weights:
        raise bad("loss_weights", "may only set 'contrastive', 'coarse' and 'fine'")


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read a params YAML file, validate it, and apply `overrides` (validated the same way)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: must be a mapping of params keys to values, got {type(values).__name__}")
    return Params.from_mapping({**values, **(overrides or {})}, source=str(path))
