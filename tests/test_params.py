"""Params files: validation errors name the file and the key; every shipped file loads."""

from pathlib import Path

import pytest

from tclib.errors import ParamsError
from tclib.params import Params, load_params

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
    ("teachers: [xclip, clip4clip]", "teachers", "must name distinct teachers of"),
    ("teachers: [xclip, xclip]", "teachers", "must name distinct teachers of"),
    ("teachers: [xclip]\nruns: ['teachclip:xclip+ts2net']", "runs",
     r"'teachclip:xclip\+ts2net': the teachers after ':' must each be one of teachers \['xclip'\]"),
    ("runs: ['clip4clip-meanP:xclip']", "runs", "'clip4clip-meanP:xclip': only teachclip runs take"),
    ("runs: [teachclip, teachclip]", "runs", "must not name a run twice"),
    ("runs: [teachclip]\nstudent_checkpoints: {teachclip-coarse: a.bin}", "student_checkpoints",
     r"names runs \['teachclip-coarse'\] that are not in runs"),
    ("teachers: [xclip]\nteacher_checkpoints: {ts2net: a.bin}", "teacher_checkpoints",
     r"names teachers \['ts2net'\] that are not in teachers"),
    ("teacher_options: {xpool: {heads: 2}}", "teacher_options", "names teacher 'xpool' that is not in teachers"),
    ("teacher_options: {ts2net: {noise: true}}", "teacher_options",
     r"'ts2net' takes a mapping of its options \['noisy_selection', 'token_shift'\]"),
    ("teacher_options: {ts2net: {token_shift: 1}}", "teacher_options", "ts2net.token_shift must be bool"),
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
    assert params.runs[1] == "teachclip:xclip+ts2net" and params.student_checkpoints == {"teachclip": "pytorch_model.bin.4"}
