"""Experiment parameters: one flat schema shared by every notebook and by `tclib reproduce`.

A params file (`params/<exp>.yaml`) is a plain papermill parameter file: a flat mapping from
the keys below to values. `load_params` reads one, fills in defaults, and rejects it when anything
is wrong: unknown keys, wrong types, values out of range or disagreeing with each other, all listed
in one ParamsError, one line per problem, each naming the file and the key. What needs the file
system or the models (paths, checkpoints, the CLIP name and weights) is checked by
`tclib.preflight`. The defaults are the reference MSR-VTT settings (CLIP4Clip / TeachCLIP,
ViT-B/32); `params/demo.yaml` overrides what the demo needs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_type_hints

import yaml

from .data.framecache import Storage
from .data.frames import sampling_problems
from .data.readers import READERS
from .errors import ParamsError
from .experiment.runs import BASES, run_problems
from .losses import CoarseMethod, FineMethod, LossTerm
from .project import project_root, resolve_path
from .typecheck import base, coerce, describe, type_problem

TeacherMode = Literal["cached", "online"]
Precision = Literal["fp32", "bf16"]


@dataclass(frozen=True)
class Params:
    """Every parameter of an experiment. Field comments say what each one means."""

    # --- experiment -------------------------------------------------------------------------
    exp: str = "msrvtt-9k"  # name; results go to <results_dir>/<exp>/
    results_dir: str = "results"
    seeds: Annotated[list[int], "a non-empty list of integers"] = field(default_factory=lambda: [42])  # one run per seed (table: mean ± std)
    device: str = "auto"  # "auto" (cuda when present), "cpu", "cuda", "cuda:1", ...

    # --- data ----------------------------------------------------------------------------------
    dataset: str = "msrvtt"  # a reader of tclib.data.READERS: msrvtt, msvd, didemo, activitynet, vatex, teachclip
    data_root: str = "data/msrvtt"  # the data set's folder (annotations in it or in Annotations/)
    videos_dir: str = ""  # where the videos are, when not under data_root
    train_split: str = "train"
    test_split: str = "test"
    data_options: dict[str, Any] = field(default_factory=dict)  # reader options, e.g. {train_csv: MSRVTT_train.7k.csv}
    frame_cache: bool = True  # decode every video once into results/<exp>/frames; false: decode on the fly
    frame_cache_format: Storage = "raw"  # "raw" (uint8 arrays) or "jpeg" (each frame a JPEG: ~7x smaller, lossy)
    jpeg_quality: int = 90  # JPEG quality of a "jpeg" frame cache
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
    runs: Annotated[list[str], "a list of run names"] = field(default_factory=lambda: list(BASES))  # student variants; "teachclip:xclip+ts2net"
    student_checkpoints: dict[str, str] = field(default_factory=dict)  # run -> file: evaluate that student, don't train it

    # --- teachers ------------------------------------------------------------------------------
    teachers: list[str] = field(default_factory=lambda: ["xclip", "ts2net"])  # prepared, evaluated, and teaching
    teacher_checkpoints: dict[str, str] = field(default_factory=dict)  # teacher name -> file; {} trains them
    teacher_mode: TeacherMode = "cached"  # cached: teacher features computed once; online: teachers run on every batch
    teacher_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # teacher -> constructor options, e.g. {ts2net: {token_shift: true}}
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
    coarse_method: CoarseMethod = "pear"
    fine_method: FineMethod = "ce"
    loss_weights: dict[LossTerm, Annotated[float, "a number ≥ 0"]] = field(default_factory=dict)  # {} = reference weights for coarse_method
    num_workers: Annotated[int | Literal["auto"], "'auto' or a number ≥ 0"] = "auto"  # loader processes per GPU; auto: from the cores (0 on a CPU device)
    gpus: int = 1  # > 1: students train over this many processes (torchrun), batch_size being the global batch
    precision: Annotated[Precision, "'fp32' or 'bf16'"] = "fp32"  # or "bf16": students train under bfloat16 autocast (teachers, evaluation: fp32)
    tf32: bool = True  # fp32 matrix products of training on CUDA's tensor cores (TF32); evaluation and teacher scoring keep full fp32
    grad_accumulation: int = 1  # students: each batch in this many micro-batches (the whole batch's negatives), one optimizer step
    grad_checkpointing: bool = False  # recompute the CLIP towers' activations in backward: far less memory, ~1/3 more compute
    compile: bool = False  # torch.compile the model being trained
    log_every: int = 10  # training steps between read-backs of the losses (progress bar, TensorBoard)

    # --- evaluation and plots ------------------------------------------------------------------
    eval_batch_size: int = 64
    dsl: bool = False  # also rank with dual-softmax inference: extra rows and tables, labelled DSL, never the default numbers
    plot_videos: int = 4  # attention.png shows the first caption of this many test videos...
    plot_video_ids: Annotated[list[str], "a list of video ids (strings)"] = field(default_factory=list)  # ...or of these test videos, by id

    def __post_init__(self) -> None:
        """Every Params is built here (from_mapping, replace() and Params(**values) alike): values coerced
        to their field's type where the schema allows it, then checked."""
        problems = settle(self, source="<params>")
        if problems:
            raise ParamsError("\n".join(problems))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "<params>") -> Params:
        """Build from a mapping; `source` names the origin. Unknown keys, wrong types and invalid values
        are all reported at once: one ParamsError, one line per problem, each naming `source` and the key."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        problems = []
        unknown = sorted(set(values) - set(fields))
        if unknown:
            problems.append(f"{source}: unknown params key(s) {', '.join(map(repr, unknown))}; "
                            f"known keys are listed in tclib/params.py")
        params = cls.__new__(cls)  # filled as __init__ fills it, checked naming `source` with the unknown keys
        for name, f in fields.items():
            object.__setattr__(params, name, values[name] if name in values else _default(f))
        problems += settle(params, source)
        if problems:
            raise ParamsError("\n".join(problems))
        return params

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.field_names()}

    def values(self, keys: list[str]) -> list[Any]:
        """The values of `keys`, in order: what a stage's fingerprint is made of."""
        return [getattr(self, key) for key in keys]

    @property
    def exp_dir(self) -> Path:
        return Path(self.results_dir) / self.exp

    def resolved(self, root: str | Path | None = None) -> Params:
        """These params with every path absolute: relative ones joined to the project root (or `root`),
        see tclib.project. clip_pretrained is a path only when it names a file (a pretrained tag such
        as "openai" has no '/' and no checkpoint suffix)."""
        root = Path(root) if root else project_root()
        values = self.to_dict()
        for key in PATH_KEYS:
            values[key] = resolve_path(values[key], root)
        if _is_file_name(self.clip_pretrained):
            values["clip_pretrained"] = resolve_path(self.clip_pretrained, root)
        for key in ("teacher_checkpoints", "student_checkpoints"):
            values[key] = {name: resolve_path(path, root) if isinstance(path, str) else path
                           for name, path in values[key].items()}
        return dataclasses.replace(self, **values)


PATH_KEYS = ("results_dir", "data_root", "videos_dir")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def _is_file_name(value: str) -> bool:
    return bool(value) and ("/" in value or value.startswith("~") or value.endswith(CHECKPOINT_SUFFIXES))


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return f.default


@functools.cache
def field_types() -> dict[str, Any]:
    """Each field's annotation (Annotated descriptions kept): what validation reads the types from."""
    return get_type_hints(Params, include_extras=True)


# Lower bounds of the numeric keys: AT_LEAST inclusive (≥: counts, sizes, scales), ABOVE exclusive (>).
AT_LEAST: dict[str, float] = {
    "synthetic_train_videos": 1, "synthetic_test_videos": 1, "synthetic_frame_size": 16, "synthetic_seed": 0,
    "max_words": 3, "max_frames": 1, "framerate": 1, "decode_workers": 1,
    "pretrain_steps": 0, "pretrain_batch_size": 1, "temporal_layers": 1,
    "teacher_epochs": 1, "epochs": 1, "batch_size": 1, "clip_lr_scale": 0, "afa_lr_scale": 0,
    "weight_decay": 0, "grad_clip": 0, "num_workers": 0, "gpus": 1, "log_every": 1, "grad_accumulation": 1,
    "eval_batch_size": 1,
    "plot_videos": 0,
}
ABOVE: dict[str, float] = {"pretrain_lr": 0, "afa_temperature": 0, "teacher_lr": 0, "lr": 0, "beta": 0}
SEED_LIMIT = 2**32  # numpy's seeds are 0 <= seed < 2**32
_UNSET = object()


def settle(params: Params, source: str) -> list[str]:
    """Coerce each value of `params` (being built) to its field's type where the schema allows it (an
    int where a float is expected, null as an empty string or mapping); then every problem left (see
    `value_problems`)."""
    for name, hint in field_types().items():
        object.__setattr__(params, name, coerce(getattr(params, name), base(hint)))
    return value_problems(params, source)


def value_problems(params: Params, source: str) -> list[str]:
    """Every problem of `params`, one line each, naming `source` and the key: wrong types (read from the
    fields' annotations: element types, choices), then ranges and the agreement of runs, teachers and
    the checkpoints and options they name. A check that reads a key of the wrong type is left out (that
    key's type is the problem reported). Whether `teachers` and `teacher_options` name teachers and
    options the models have is a check of the models' (tclib.preflight)."""
    found = Problems(params, source)
    for name, hint in field_types().items():
        found.of_type(name, hint)
    for check in (_experiment_problems, _data_problems, _range_problems, _teaching_problems):
        check(found)
    return found.lines


class Problems:
    """The problems found in one Params, a line each; a key whose type is wrong is not checked further."""

    def __init__(self, params: Params, source: str) -> None:
        self.params, self.source = params, source
        self.lines: list[str] = []
        self.wrong_type: set[str] = set()

    def of_type(self, key: str, hint: Any) -> None:
        why = type_problem(getattr(self.params, key), hint)
        if why:
            self.lines.append(f"{self.source}: params key {key!r} {why}")
            self.wrong_type.add(key)

    def typed(self, *keys: str) -> bool:
        return not self.wrong_type.intersection(keys)

    def bad(self, key: str, why: str, value: Any = _UNSET) -> None:
        value = getattr(self.params, key) if value is _UNSET else value
        self.lines.append(f"{self.source}: params key {key!r} {why}, got {value!r}")


def _experiment_problems(found: Problems) -> None:
    """exp names a folder; seeds are distinct numpy seeds; device is a torch device."""
    params, typed, bad = found.params, found.typed, found.bad
    if typed("exp") and (not params.exp or "/" in params.exp or params.exp in (".", "..")):
        bad("exp", "must name a folder under results_dir (not empty, no '/')")
    if typed("seeds"):
        if not params.seeds:
            bad("seeds", f"must be {describe(field_types()['seeds'])}")
        elif not all(0 <= s < SEED_LIMIT for s in params.seeds):
            bad("seeds", "must each be ≥ 0 and < 2**32")
        elif len(set(params.seeds)) != len(params.seeds):
            bad("seeds", "must be distinct")
    if typed("device") and not _is_device(params.device):
        bad("device", "must be 'auto' or a torch device such as 'cpu', 'cuda' or 'cuda:1'")


def _data_problems(found: Problems) -> None:
    """dataset is a layout, its splits and options are its own; the frames are sampled and stored right."""
    params, typed, bad = found.params, found.typed, found.bad
    if typed("dataset") and params.dataset not in READERS:
        bad("dataset", f"must be one of {sorted(READERS)}")
    if typed("dataset", "train_split", "test_split") and params.dataset in READERS:
        reader = READERS[params.dataset]
        for key in ("train_split", "test_split"):
            split = getattr(params, key)
            if reader.splits and reader.split_aliases.get(split, split) not in reader.splits:
                bad(key, f"must be a split of {params.dataset}: one of {list(reader.splits)}"
                         + (f" or {sorted(reader.split_aliases)}" if reader.split_aliases else ""))
    if typed("dataset", "data_options") and params.dataset in READERS:
        defaults = READERS[params.dataset].defaults
        unknown = sorted(set(params.data_options) - set(defaults))
        if unknown:
            bad("data_options", f"names options {unknown} that {params.dataset} does not have "
                                f"(it has {sorted(defaults)})")
        for option, value in params.data_options.items():
            if option in defaults and defaults[option] is not None and type(value) is not type(defaults[option]):
                bad("data_options", f"{option} must be {type(defaults[option]).__name__}", value)
    if typed("synthetic_frame_size") and params.synthetic_frame_size % 2:
        bad("synthetic_frame_size", "must be even (H.264 yuv420p)")
    if typed("jpeg_quality") and not 1 <= params.jpeg_quality <= 100:
        bad("jpeg_quality", "must be in 1..100")
    if typed("slice_framepos") and (why := sampling_problems(slice_framepos=params.slice_framepos)):
        bad("slice_framepos", why["slice_framepos"])


def _range_problems(found: Problems) -> None:
    """Numbers in their ranges; the batch splits over the processes and micro-batches."""
    params, typed, bad = found.params, found.typed, found.bad
    for key, low in AT_LEAST.items():
        if typed(key) and getattr(params, key) != "auto" and not _in_range(getattr(params, key), low, inclusive=True):
            bad(key, f"must be {'a finite number ' if _is_nonfinite(getattr(params, key)) else ''}≥ {low:g}")
    for key, low in ABOVE.items():
        if typed(key) and not _in_range(getattr(params, key), low, inclusive=False):
            bad(key, f"must be {'a finite number ' if _is_nonfinite(getattr(params, key)) else ''}> {low:g}")
    if (typed("grad_accumulation", "batch_size", "gpus") and params.gpus >= 1 and params.grad_accumulation >= 1
            and params.batch_size % (params.gpus * params.grad_accumulation)):
        bad("batch_size", f"must be a multiple of gpus × grad_accumulation ({params.gpus * params.grad_accumulation})"
            if params.grad_accumulation > 1 else f"must be a multiple of gpus ({params.gpus}): each process takes "
            "an equal slice")
    if typed("gpus", "teacher_mode") and params.gpus > 1 and params.teacher_mode != "cached":
        bad("teacher_mode", "must be 'cached' with gpus > 1 (the teachers score the global batch from their "
            "feature cache)")
    if typed("warmup_proportion") and not 0 <= params.warmup_proportion < 1:
        bad("warmup_proportion", "must be ≥ 0 and < 1")


def _teaching_problems(found: Problems) -> None:
    """Runs, the teachers and checkpoints they name, the videos to plot, the loss weights."""
    params, typed, bad = found.params, found.typed, found.bad
    if typed("runs"):
        found.lines.extend(_run_problems(params, found.source, teachers_typed=typed("teachers")))
    if typed("student_checkpoints", "runs"):
        _check_files(params, "student_checkpoints", "runs", bad)
    if typed("teacher_checkpoints", "teachers"):
        _check_files(params, "teacher_checkpoints", "teachers", bad)
    if typed("teacher_options", "teachers"):
        for name in params.teacher_options:
            if name not in params.teachers:
                bad("teacher_options", f"names teacher {name!r} that is not in teachers {params.teachers}")
    if typed("plot_video_ids") and not all(params.plot_video_ids):
        bad("plot_video_ids", f"must be {describe(field_types()['plot_video_ids'])}")
    if typed("loss_weights"):
        for name, weight in params.loss_weights.items():
            if not _in_range(weight, 0, inclusive=True):
                bad("loss_weights", f"{name} must be {describe(get_args(field_types()['loss_weights'])[1])}", weight)


def _run_problems(params: Params, source: str, teachers_typed: bool) -> list[str]:
    """Problems of `runs` (tclib.experiment.runs.run_problems), each naming `source` and the key."""
    found = run_problems(params.runs, params.teachers if teachers_typed else None)
    return [f"{source}: params key 'runs' {why}, got {params.runs!r}" for why in found]


def _check_files(params: Params, key: str, names_key: str, bad) -> None:
    """A {run or teacher: file} mapping: its keys are in `names_key`, its values non-empty paths."""
    files, names = getattr(params, key), getattr(params, names_key)
    unknown = sorted(set(files) - set(names))
    if unknown:
        bad(key, f"names {names_key} {unknown} that are not in {names_key} {names}")
    for name, path in files.items():
        if not isinstance(path, str) or not path:
            bad(key, f"{name} must be a file path", path)


def _in_range(value: float, low: float, inclusive: bool) -> bool:
    return math.isfinite(value) and (value >= low if inclusive else value > low)


def _is_nonfinite(value: float) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


# torch.device's grammar (c10/core/Device.cpp): a device type, then optionally ":" and an index without
# leading zeros. Checked here without importing torch, so that reading params stays light.
DEVICE_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga", "maia",
                "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")
DEVICE = re.compile(rf"(?:{'|'.join(DEVICE_TYPES)})(?::(?:0|[1-9][0-9]*))?")


def _is_device(device: str) -> bool:
    return device == "auto" or DEVICE.fullmatch(device) is not None


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read a params YAML file, validate it, apply `overrides` (validated the same way), and resolve its
    paths against the project root (tclib.project), as the file itself is found when it is relative."""
    values = read_params_file(path)
    return Params.from_mapping({**values, **(overrides or {})}, source=str(resolve_path(str(path)))).resolved()


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The mapping a params file holds (its keys and values are validated by load_params); a missing
    file, invalid YAML or anything but a mapping is a ParamsError naming the file."""
    path = Path(resolve_path(str(path)))
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: must be a mapping of params keys to values, got {type(values).__name__}")
    return values
