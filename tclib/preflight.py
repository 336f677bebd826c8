"""Pre-flight checks: everything a run needs from outside its params, checked before any stage runs.

`Params` checks the values themselves (types, ranges, choices). What needs the file system or the
models is checked here, without downloading or writing anything:

- teachers names teachers of the registry (tclib.models.teachers.TEACHERS), each once, and
  teacher_options only options their constructors take, of their types;
- clip_model is an open_clip model built as its CLIP class; clip_pretrained is "", a pretrained tag
  of it or an existing file; the activation agrees with the weights (OpenAI's need -quickgelu);
  max_words fits the text tower, and max_frames the seqTransf head of the students;
- data_root exists (unless `synthetic: true`, which writes it), videos_dir too when given, and a
  layout whose splits are files under data_root (teachclip's VideoSet/<set>.txt) has both splits;
- device and gpus fit this machine: a GPU device needs a GPU (cuda:K one of its GPUs), several
  processes on GPUs one GPU each (device: cuda, each taking the GPU of its local rank), no more
  processes than GPUs; device: cpu with gpus > 1 runs gloo processes on the CPUs;
- every file of teacher_checkpoints and student_checkpoints exists, and a local clip_pretrained file;
- on a CUDA device, the training step's estimated memory fits the GPU (tclib.memory), else one line
  saying what it needs and which settings would fit;
- then the expensive part: each of these files loads, strictly, into the model the run would build
  (a teacher of the params, the student of that run, the CLIP of clip_model), on random weights.

`problems(params, source)` returns one line per problem, each starting with `source` (the params
file) and naming the key; `check(params, source)` raises PreflightError listing them. Params read
by load_params have absolute paths (relative ones are joined to the project root, tclib.project).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .distributed import is_cuda
from .errors import PreflightError, TclibError
from .experiment.runs import parse_run
from .memory import memory_problems
from .params import Params


def check(params: Params, source: str = "<params>") -> None:
    """Raise PreflightError, one line per problem, when `problems` finds any."""
    found = problems(params, source)
    if found:
        raise PreflightError("\n".join(found))


def problems(params: Params, source: str = "<params>") -> list[str]:
    """Every problem of `params` that a stage would otherwise meet later, one line each: the cheap
    checks first (names, folders, devices, files), then loading each checkpoint into its model."""
    lines = teacher_problems(params)
    clip_lines, clip_builds, clip_file = clip_problems(params)
    lines += clip_lines + data_problems(params) + device_problems(params.device, params.gpus)
    lines += missing_files(params)
    if clip_builds:
        lines += memory_problems(params)  # on a CUDA device: whether training fits its memory (tclib.memory)
        lines += checkpoint_problems(params, clip_file)
    return [f"{source}: {' '.join(line.splitlines())}" for line in lines]  # an error's text may span lines


def teacher_problems(params: Params) -> list[str]:
    """teachers: distinct names of the registry; teacher_options: options of their constructors, typed as
    their defaults. Cheap: nothing is built (the notebooks run these with the params checks)."""
    from .models.teachers import TEACHERS

    lines = []
    if any(t not in TEACHERS for t in params.teachers) or len(set(params.teachers)) != len(params.teachers):
        lines.append(f"params key 'teachers' must name distinct teachers of {sorted(TEACHERS)}, got {params.teachers!r}")
    for name, options in params.teacher_options.items():
        if name not in TEACHERS:
            continue
        allowed = TEACHERS[name].options()
        if set(options) - set(allowed):
            lines.append(f"params key 'teacher_options' {name!r} takes a mapping of its options {sorted(allowed)}, "
                         f"got {params.teacher_options!r}")
            continue
        for option, value in options.items():
            if type(value) is not type(allowed[option]):
                lines.append(f"params key 'teacher_options' {name}.{option} must be {type(allowed[option]).__name__}, "
                             f"got {params.teacher_options!r}")
    return lines


def clip_problems(params: Params) -> tuple[list[str], bool, bool]:
    """Problems of clip_model and clip_pretrained (no download, nothing built); whether the model name
    itself is fine, so that a model of it can be built to load checkpoints into; and whether
    clip_pretrained is a local file that passed these checks (its contents are not read here)."""
    from .models.backbone import check_clip_choice, text_context_length

    try:
        check_clip_choice(params.clip_model, "")
    except TclibError as err:
        return [str(err)], False, False
    lines, clip_file = [], False
    try:
        clip_file = check_clip_choice(params.clip_model, params.clip_pretrained)
    except TclibError as err:
        lines.append(str(err))
    context = text_context_length(params.clip_model)
    if params.max_words > context:
        lines.append(f"params key 'max_words' must be ≤ {context}, the text context length of clip_model "
                     f"{params.clip_model}, got {params.max_words}")
    seq_transf = any(parse_run(run).temporal == "seqTransf" for run in params.runs) or "xclip" in params.teachers
    if params.max_frames > context and seq_transf:  # X-CLIP's video vector comes from a seqTransf head too
        lines.append(f"params key 'max_frames' must be ≤ {context}, the frame positions of the seqTransf head "
                     f"(the text context length of clip_model {params.clip_model}), got {params.max_frames}")
    return lines, True, clip_file


def data_problems(params: Params) -> list[str]:
    """data_root (unless synthetic: true writes it) and videos_dir exist; splits found on disk exist."""
    from .data.readers import READERS

    lines = []
    root = Path(params.data_root)
    if not params.synthetic:
        if not root.exists():
            lines.append(f"params key 'data_root': folder not found: {shown(root)}")
        elif not root.is_dir():
            lines.append(f"params key 'data_root': not a folder: {shown(root)}")
        elif not READERS[params.dataset].splits:  # a layout whose splits are files under the root
            found = READERS[params.dataset].available_splits(root)
            for key in ("train_split", "test_split"):
                if getattr(params, key) not in found:
                    lines.append(f"params key {key!r}: no {params.dataset} split {getattr(params, key)!r} under "
                                 f"{shown(root)} (found: {list(found)})")
    if params.videos_dir:
        videos = Path(params.videos_dir)
        written_here = params.synthetic and videos.resolve().is_relative_to(root.resolve())
        if not written_here and not videos.is_dir():
            lines.append(f"params key 'videos_dir': folder not found: {shown(videos)}")
    return lines


def device_problems(device: str, processes: int, options: bool = False) -> list[str]:
    """`processes` on `device` ("auto", "cpu", "cuda", "cuda:K") against this machine's GPUs: one fixed
    GPU for several processes, a GPU device without a GPU, a GPU index the machine lacks, more processes
    on GPUs than GPUs. CPU processes are fine (gloo). Lines name params keys, or with `options` the
    command's options (tclib index --device, --gpus). Cheap: nothing touches a GPU."""
    key = (lambda name: f"--{name}") if options else (lambda name: f"params key {name!r}")
    use = (lambda name, value: f"--{name} {value}") if options else (lambda name, value: f"{name}: {value}")
    try:
        cuda = is_cuda(device)
    except RuntimeError:
        return [f"{key('device')} must be 'auto' or a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}"]
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = torch.device(device).index if cuda and device != "auto" else None
    lines = []
    if index is not None and processes > 1:
        lines.append(f"{key('device')} must not name one GPU ({device}) for {use('gpus', processes)} processes: use "
                     f"{use('device', 'cuda')} — each process takes the GPU of its local rank — or {use('gpus', 1)}")
    if cuda and here == 0:
        return lines + [f"{key('device')} is {device}, but this machine has no GPU (torch.cuda.is_available() is "
                        f"False): use {use('device', 'cpu')} or {use('device', 'auto')}"]
    if index is not None and index >= here:
        lines.append(f"{key('device')} is {device}, but this machine has {gpu_count(here)}: use one of them, or "
                     f"{use('device', 'cuda')}")
    if cuda and processes > here:
        lines.append(f"{key('gpus')} asks for {processes} processes on GPUs ({use('device', device)}), but this "
                     f"machine has {gpu_count(here)}: use at most {use('gpus', here)} (one process per GPU) or "
                     f"{use('device', 'cpu')}")
    return lines


def gpu_count(count: int) -> str:
    """'1 GPU (cuda:0)', '4 GPUs (cuda:0 to cuda:3)'."""
    return "1 GPU (cuda:0)" if count == 1 else f"{count} GPUs (cuda:0 to cuda:{count - 1})"


def missing_files(params: Params) -> list[str]:
    """Checkpoint files that are not there (clip_pretrained's is reported by `clip_problems`)."""
    lines = []
    for key in ("teacher_checkpoints", "student_checkpoints"):
        for name, path in getattr(params, key).items():
            if not Path(path).is_file():
                lines.append(f"params key {key!r}: {name}: file not found: {shown(Path(path))}")
    return lines


def checkpoint_problems(params: Params, clip_file: bool = False) -> list[str]:
    """Load each existing checkpoint file, strictly, into the model the run would build for it: a
    local clip_pretrained file (when `clip_file`) into the CLIP of clip_model, each teacher's into
    that teacher as the params build it, each student's into the student of its run. Models start
    from random weights; the global random state is left as it was."""
    from .models import CLIP4Clip, build_teacher, load_checkpoint, load_clip
    from .models.backbone import load_clip_state, read_clip_state

    P = params
    lines = []
    with torch.random.fork_rng(devices=[]):
        if clip_file:
            try:
                load_clip_state(load_clip(P.clip_model, ""), read_clip_state(P.clip_pretrained)[0],
                                source=P.clip_pretrained)
            except TclibError as err:
                lines.append(f"params key 'clip_pretrained': {err}")
        for name, path in P.teacher_checkpoints.items():
            if Path(path).is_file():
                try:
                    teacher = build_teacher(name, load_clip(P.clip_model, ""), P.max_words, P.max_frames,
                                            P.temporal_layers, mask_padding=P.mask_padded_frames,
                                            **P.teacher_options.get(name, {}))
                    load_checkpoint(teacher, path)
                except TclibError as err:
                    lines.append(f"params key 'teacher_checkpoints': {name}: {err}")
        for run, path in P.student_checkpoints.items():
            if Path(path).is_file():
                spec = parse_run(run)
                try:
                    student = CLIP4Clip(load_clip(P.clip_model, ""), temporal=spec.temporal, afa=spec.afa,
                                        temporal_layers=P.temporal_layers, afa_temperature=P.afa_temperature,
                                        mask_padding=P.mask_padded_frames)
                    load_checkpoint(student, path)
                except TclibError as err:
                    lines.append(f"params key 'student_checkpoints': {run}: {err}")
    return lines


def shown(path: Path) -> str:
    """A path as the params give it, followed by where it resolves when it is relative."""
    return str(path) if path.is_absolute() else f"{path} (relative to {Path.cwd()})"
