"""Params files: validation errors name the file and the key, every problem at once, one line each;
every shipped file loads."""

import dataclasses
from pathlib import Path

import pytest

from tclib.errors import ParamsError
from tclib.params import Params, load_params
from tclib.project import project_root

PARAMS_DIR = Path(__file__).resolve().parent.parent / "params"


@pytest.mark.parametrize("path", sorted(PARAMS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_params_files_load(path):
    params = load_params(path)
    assert params.exp == path.stem


def test_demo_overrides_defaults():
    params = load_params(PARAMS_DIR / "demo.yaml")
    assert params.clip_model == "tclib-tiny" and params.synthetic is True
    assert params.seeds == [0, 1, 2]
    assert Params().clip_model == "ViT-B-32-quickgelu"  # the reference's ViT-B/32, with OpenAI's activation
    assert Params().teachers == ["xclip", "ts2net"]  # the paper's teachers on MSR-VTT


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("exp: bad\nlearning_rate: 0.1\n")
    with pytest.raises(ParamsError, match=r"bad\.yaml.*'learning_rate'"):
        load_params(path)


@pytest.mark.parametrize("line,key", [("epochs: ten", "epochs"), ("seeds: 3", "seeds"), ("synthetic: 1", "synthetic"),
                                      ("lr: fast", "lr"), ("epochs: true", "epochs")])
def test_wrong_type_names_file_and_key(tmp_path, line, key):
    path = tmp_path / "typed.yaml"
    path.write_text(f"exp: typed\n{line}\n")
    with pytest.raises(ParamsError, match=rf"typed\.yaml: params key '{key}' must be"):
        load_params(path)


@pytest.mark.parametrize("line,key", [("coarse_method: kl", "coarse_method"), ("runs: [teachclip, mine]", "runs"),
                                      ("max_frames: 0", "max_frames"), ("loss_weights: {coarse: 1, other: 2}",
                                                                        "loss_weights")])
def test_invalid_values_name_the_key(tmp_path, line, key):
    path = tmp_path / "values.yaml"
    path.write_text(f"{line}\n")
    with pytest.raises(ParamsError, match=rf"values\.yaml: params key '{key}'"):
        load_params(path)


def test_ints_are_accepted_as_floats_and_missing_file(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("lr: 1\n")
    assert load_params(path).lr == 1.0 and isinstance(load_params(path).lr, float)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="must be a mapping"):
        load_params(tmp_path / "list.yaml")


@pytest.mark.parametrize("text,key,why", [
    ("teacher_mode: sometimes", "teacher_mode", "must be one of"),
    ("teachers: [xclip]\nruns: ['teachclip:xclip+ts2net']", "runs",
     r"'teachclip:xclip\+ts2net': the teachers after ':' must each be one of teachers \['xclip'\]"),
    ("runs: ['clip4clip-meanP:xclip']", "runs", "'clip4clip-meanP:xclip': only teachclip runs take"),
    ("runs: [teachclip, teachclip]", "runs", "must not name a run twice"),
    ("runs: [teachclip]\nstudent_checkpoints: {teachclip-coarse: a.bin}", "student_checkpoints",
     r"names runs \['teachclip-coarse'\] that are not in runs"),
    ("teachers: [xclip]\nteacher_checkpoints: {ts2net: a.bin}", "teacher_checkpoints",
     r"names teachers \['ts2net'\] that are not in teachers"),
    ("teacher_options: {xpool: {heads: 2}}", "teacher_options", "names teacher 'xpool' that is not in teachers"),
])
def test_teachers_runs_and_checkpoints_are_checked(tmp_path, text, key, why):
    path = tmp_path / "teaching.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ParamsError, match=rf"teaching\.yaml: params key '{key}' {why}"):
        load_params(path)


def test_a_run_can_name_its_teachers(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("teachers: [xclip, ts2net, xpool]\nruns: [teachclip, 'teachclip:xclip+ts2net', "
                    "'teachclip-coarse:xpool']\nstudent_checkpoints: {teachclip: pytorch_model.bin.4}\n"
                    "teacher_options: {ts2net: {noisy_selection: true}, xpool: {heads: 2, dropout: 0.1}}\n")
    params = load_params(path)
    assert params.runs[1] == "teachclip:xclip+ts2net"
    assert params.student_checkpoints == {"teachclip": str(project_root() / "pytorch_model.bin.4")}


def test_every_problem_is_reported_at_once_one_line_each(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("exp: many\nlearning_rate: 0.1\nepochs: 0\nbatch_size: two\nlr: -1\nwarmup_proportion: 1\n"
                    "seeds: [3, 3]\nteachers: [xclip]\nruns: [teachclip, 'teachclip:ts2net']\n"
                    "loss_weights: {coarse: -1, fine: 2}\ndata_options: {train_csv: a.csv, shuffle: true}\n")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value).splitlines() == [
        f"{path}: unknown params key(s) 'learning_rate'; known keys are listed in tclib/params.py",
        f"{path}: params key 'batch_size' must be int, got str 'two'",
        f"{path}: params key 'seeds' must be distinct, got [3, 3]",
        f"{path}: params key 'data_options' names options ['shuffle'] that msrvtt does not have (it has "
        "['expand_sentences', 'test_csv', 'train_csv']), got {'train_csv': 'a.csv', 'shuffle': True}",
        f"{path}: params key 'epochs' must be ≥ 1, got 0",
        f"{path}: params key 'lr' must be > 0, got -1.0",
        f"{path}: params key 'warmup_proportion' must be ≥ 0 and < 1, got 1.0",
        f"{path}: params key 'runs' 'teachclip:ts2net': the teachers after ':' must each be one of teachers "
        "['xclip'], got ['teachclip', 'teachclip:ts2net']",
        f"{path}: params key 'loss_weights' coarse must be a number ≥ 0, got -1",
    ]


def test_epochs_zero_is_refused(tmp_path):
    path = tmp_path / "zero.yaml"
    path.write_text("epochs: 0\n")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: params key 'epochs' must be ≥ 1, got 0"


@pytest.mark.parametrize("line,why", [
    ("teacher_epochs: 0", "must be ≥ 1, got 0"),
    ("batch_size: 0", "must be ≥ 1, got 0"),
    ("eval_batch_size: -4", "must be ≥ 1, got -4"),
    ("max_words: 2", "must be ≥ 3, got 2"),
    ("max_frames: 0", "must be ≥ 1, got 0"),
    ("framerate: 0", "must be ≥ 1, got 0"),
    ("decode_workers: 0", "must be ≥ 1, got 0"),
    ("synthetic_train_videos: 0", "must be ≥ 1, got 0"),
    ("synthetic_test_videos: 0", "must be ≥ 1, got 0"),
    ("synthetic_frame_size: 8", "must be ≥ 16, got 8"),
    ("synthetic_frame_size: 33", "must be even (H.264 yuv420p), got 33"),
    ("synthetic_seed: -1", "must be ≥ 0, got -1"),
    ("pretrain_steps: -1", "must be ≥ 0, got -1"),
    ("pretrain_batch_size: 0", "must be ≥ 1, got 0"),
    ("temporal_layers: 0", "must be ≥ 1, got 0"),
    ("plot_videos: -1", "must be ≥ 0, got -1"),
    ("num_workers: -1", "must be ≥ 0, got -1"),
    ("lr: 0", "must be > 0, got 0.0"),
    ("teacher_lr: -0.001", "must be > 0, got -0.001"),
    ("pretrain_lr: 0", "must be > 0, got 0.0"),
    ("lr: .nan", "must be a finite number > 0, got nan"),
    ("lr: .inf", "must be a finite number > 0, got inf"),
    ("clip_lr_scale: -1", "must be ≥ 0, got -1.0"),
    ("afa_lr_scale: -0.5", "must be ≥ 0, got -0.5"),
    ("weight_decay: -0.1", "must be ≥ 0, got -0.1"),
    ("warmup_proportion: -0.1", "must be ≥ 0 and < 1, got -0.1"),
    ("grad_clip: -1", "must be ≥ 0, got -1.0"),
    ("beta: 0", "must be > 0, got 0.0"),
    ("afa_temperature: 0", "must be > 0, got 0.0"),
    ("seeds: []", "must be a non-empty list of integers, got []"),
    ("seeds: [1, two]", "must be a non-empty list of integers, got [1, 'two']"),
    ("seeds: [-1]", "must each be ≥ 0 and < 2**32, got [-1]"),
    ("seeds: [0, 1, 0]", "must be distinct, got [0, 1, 0]"),
    ("exp: ''", "must name a folder under results_dir (not empty, no '/'), got ''"),
    ("device: gpu0", "must be 'auto' or a torch device such as 'cpu', 'cuda' or 'cuda:1', got 'gpu0'"),
    ("loss_weights: {fine: fast}", "fine must be a number ≥ 0, got 'fast'"),
    ("data_options: [a, b]", "must be dict, got list ['a', 'b']"),
    ("data_options: {expand_sentences: 'no'}", "expand_sentences must be bool, got 'no'"),
    ("test_split: val", "must be a split of msrvtt: one of ['train', 'test'], got 'val'"),
    ("runs: [teachclip, 3]", "must be a list of run names, got ['teachclip', 3]"),
    ("teachers: []\nruns: [teachclip]", "'teachclip': is taught by every teacher of teachers, and teachers is "
                                        "empty, got ['teachclip']"),
    ("teacher_checkpoints: {xclip: ''}", "xclip must be a file path, got ''"),
    ("gpus: 0", "must be ≥ 1, got 0"),
    ("precision: fp16", "must be 'fp32' or 'bf16', got 'fp16'"),
    ("grad_accumulation: 0", "must be ≥ 1, got 0"),
    ("gpus: 2\ngrad_accumulation: 4\nbatch_size: 12", "must be a multiple of gpus × grad_accumulation (8), got 12"),
    ("gpus: 4\nbatch_size: 30", "must be a multiple of gpus (4): each process takes an equal slice, got 30"),
    ("gpus: 2\nteacher_mode: online", "must be 'cached' with gpus > 1 (the teachers score the global batch from "
                                      "their feature cache), got 'online'"),
])
def test_ranges_and_shapes_of_values(tmp_path, line, why):
    path = tmp_path / "range.yaml"
    path.write_text(line + "\n")
    key = line.splitlines()[-1].split(":")[0]  # the last line's key
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: params key {key!r} {why}"


def test_boundary_values_are_accepted(tmp_path):
    path = tmp_path / "edges.yaml"
    path.write_text("epochs: 1\nmax_words: 3\npretrain_steps: 0\nnum_workers: 0\nplot_videos: 0\nclip_lr_scale: 0\n"
                    "weight_decay: 0\nwarmup_proportion: 0\ngrad_clip: 0\nsynthetic_frame_size: 16\n"
                    "loss_weights: {contrastive: 0, coarse: 1, fine: 0.5}\nseeds: [0, 4294967295]\n"
                    "device: 'cuda:1'\ntest_split: val\ndataset: activitynet\n")
    params = load_params(path)
    assert params.epochs == 1 and params.seeds == [0, 4294967295] and params.test_split == "val"


def test_params_built_directly_are_checked_the_same_way():
    with pytest.raises(ParamsError, match=r"^<params>: params key 'epochs' must be ≥ 1, got 0$"):
        Params(epochs=0)
    with pytest.raises(ParamsError) as caught:
        Params(epochs="five", lr=0.0)
    assert str(caught.value).splitlines() == ["<params>: params key 'epochs' must be int, got str 'five'",
                                              "<params>: params key 'lr' must be > 0, got 0.0"]


def test_params_built_directly_equal_those_read_from_a_mapping():
    """Params(**values) and Params.from_mapping(values) are one constructor: the same values (an int where
    a float is expected made a float, null an empty string or mapping), so the same stage fingerprints."""
    values = {"lr": 1, "videos_dir": None, "teacher_options": None, "epochs": 2}
    direct, mapped = Params(**values), Params.from_mapping(values)
    assert direct == mapped and direct.lr == 1.0 and isinstance(direct.lr, float)
    assert direct.values(["lr", "videos_dir"]) == [1.0, ""] and direct.teacher_options == {}
    assert dataclasses.replace(mapped, lr=2).lr == 2.0  # replace() builds through the same path


@pytest.mark.parametrize("line,why", [
    ("frame_cache_format: png", "must be one of ('raw', 'jpeg'), got 'png'"),
    ("coarse_method: kl", "must be one of ('pear', 'ce', 'l1'), got 'kl'"),
    ("teachers: [xclip, 3]", "must be list, got ['xclip', 3]"),
    ("teacher_checkpoints: {xclip: 3}", "xclip must be str, got 3"),
    ("teacher_options: {xclip: 3}", "xclip must be dict, got 3"),
    ("loss_weights: {coarse: 1, other: 2}", "may only set 'contrastive', 'coarse' and 'fine', got {'coarse': 1, 'other': 2}"),
    ("slice_framepos: 3", "must be 0 (head), 1 (tail) or 2 (uniform), got 3"),
])
def test_types_are_read_from_the_annotations(tmp_path, line, why):
    path = tmp_path / "typed.yaml"
    path.write_text(line + "\n")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: params key {line.split(':')[0]!r} {why}"


def test_every_default_has_the_type_of_its_annotation():
    from tclib.params import field_types, type_problem

    defaults = Params()
    assert {name: type_problem(getattr(defaults, name), hint) for name, hint in field_types().items()} == \
        dict.fromkeys(Params.field_names())


def test_the_device_check_is_torch_devices_own_and_the_help_loads_no_torch():
    import subprocess
    import sys
    import warnings

    import torch

    from tclib.params import DEVICE_TYPES, _is_device

    names = ["cpu", "cuda", "cuda:0", "cuda:1", "cuda:10", "cpu:0", "xpu:2", "cuda:01", "cuda:-1", "cuda:x",
             "CUDA", "gpu", " cuda", "cuda ", "cuda:", "", "cuda:1:2", "cuda0", "tpu", *DEVICE_TYPES]
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # mkldnn's deprecation
                torch.device(name)
            accepted = True
        except (RuntimeError, ValueError):
            accepted = False
        assert _is_device(name) == accepted, name
    # the command line's help loads no torch (each command imports what it needs)
    code = ("import sys; from tclib.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'open_clip')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
