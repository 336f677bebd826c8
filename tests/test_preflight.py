"""Pre-flight checks: every problem a run would meet later (folders, files, CLIP name and weights,
checkpoints that do not fit their model) is found before any stage runs, one line each."""

import os
import re
from pathlib import Path

import open_clip
import pytest
import torch

from tclib import preflight
from tclib.errors import PreflightError
from tclib.models import CLIP4Clip, build_teacher, load_clip
from tclib.models.checkpoint import save_checkpoint
from tclib.params import load_params

PARAMS_DIR = Path(__file__).resolve().parent.parent / "params"
TINY = "clip_model: tclib-tiny\nclip_pretrained: ''\nmax_words: 32\nmax_frames: 12\ntemporal_layers: 2\n"


def preflight_of(tmp_path, text):
    """Write a params file under tmp_path; its path and preflight problems."""
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path, preflight.problems(load_params(path), source=str(path))


@pytest.fixture(scope="module")
def xclip_state():
    """A tiny X-CLIP teacher's state dict, as params with TINY build it."""
    torch.manual_seed(0)
    teacher = build_teacher("xclip", load_clip("tclib-tiny", ""), max_words=32, max_frames=12, temporal_layers=2)
    return teacher.state_dict()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """tmp_path as the project folder: relative paths of the params resolve there."""
    from tclib.project import ROOT_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("text,key,why", [
    ("teachers: [xclip, clip4clip]", "teachers", "must name distinct teachers of"),
    ("teachers: [xclip, xclip]", "teachers", "must name distinct teachers of"),
    ("teacher_options: {ts2net: {noise: true}}", "teacher_options",
     r"'ts2net' takes a mapping of its options \['noisy_selection', 'token_shift'\]"),
    ("teacher_options: {ts2net: {token_shift: 1}}", "teacher_options", "ts2net.token_shift must be bool"),
])
def test_teachers_and_their_options_are_those_of_the_models(tmp_path, text, key, why):
    path, problems = preflight_of(tmp_path, TINY + f"data_root: {tmp_path}\n" + text + "\n")
    assert re.match(rf"{re.escape(str(path))}: params key '{key}' {why}", problems[0]), problems


def test_several_problems_give_one_line_each(in_tmp, xclip_state):
    state = dict(xclip_state)
    state["global_mat_weights"] = state.pop("global_mat_weight")  # a key the teacher does not have
    save_checkpoint(state, in_tmp / "wrong_key.bin")
    path, problems = preflight_of(in_tmp, TINY + f"data_root: data/msrvtt\nvideos_dir: {in_tmp / 'videos'}\n"
                                  "teachers: [xclip, ts2net]\n"
                                  "teacher_checkpoints: {xclip: wrong_key.bin, ts2net: ts2net.bin}\n"
                                  "runs: [teachclip]\nstudent_checkpoints: {teachclip: students/teachclip.bin}\n")
    assert problems == [
        f"{path}: params key 'data_root': folder not found: {in_tmp / 'data/msrvtt'}",
        f"{path}: params key 'videos_dir': folder not found: {in_tmp / 'videos'}",
        f"{path}: params key 'teacher_checkpoints': ts2net: file not found: {in_tmp / 'ts2net.bin'}",
        f"{path}: params key 'student_checkpoints': teachclip: file not found: "
        f"{in_tmp / 'students/teachclip.bin'}",
        f"{path}: params key 'teacher_checkpoints': xclip: {in_tmp / 'wrong_key.bin'}: does not fit XCLIP: missing keys "
        "['global_mat_weight'] (1 in all); unexpected keys ['global_mat_weights'] (1 in all)",
    ]
    with pytest.raises(PreflightError) as caught:
        preflight.check(load_params(path), source=str(path))
    assert str(caught.value).splitlines() == problems


def test_a_teacher_checkpoint_loads_into_the_teacher_the_params_build(tmp_path, xclip_state):
    good = save_checkpoint(xclip_state, tmp_path / "xclip.bin")
    text = TINY + f"data_root: {tmp_path}\nteachers: [xclip]\nteacher_checkpoints: {{xclip: {good}}}\n"
    assert preflight_of(tmp_path, text)[1] == []
    state = dict(xclip_state)
    state["frame_logit_weight"] = torch.eye(10)  # a teacher of 10 frames, not 12
    wrong = save_checkpoint(state, tmp_path / "wrong_shape.bin")
    path, problems = preflight_of(tmp_path, text.replace(str(good), str(wrong)))
    assert problems == [f"{path}: params key 'teacher_checkpoints': xclip: {wrong}: does not fit XCLIP: wrong shapes "
                        "['frame_logit_weight (10, 10) (model (12, 12))'] (1 in all)"]


def test_an_unreadable_checkpoint_is_one_line(tmp_path):
    (tmp_path / "notes.bin").write_text("not a checkpoint\n")
    path, problems = preflight_of(tmp_path, TINY + f"data_root: {tmp_path}\nteachers: [xclip]\n"
                                                   f"teacher_checkpoints: {{xclip: {tmp_path / 'notes.bin'}}}\n")
    assert problems == [f"{path}: params key 'teacher_checkpoints': xclip: {tmp_path / 'notes.bin'}: not a "
                        "checkpoint: torch.save writes a zip archive or a pickle, this file (17 bytes) starts with "
                        "b'not '"]


def test_unknown_clip_model_is_one_line_and_nothing_is_built(tmp_path, xclip_state, monkeypatch):
    good = save_checkpoint(xclip_state, tmp_path / "xclip.bin")
    monkeypatch.setattr(open_clip, "create_model", lambda *args, **kwargs: pytest.fail("built a model"))
    path, problems = preflight_of(tmp_path, TINY.replace("tclib-tiny", "ViT-Z-99") +
                                  f"data_root: {tmp_path}\nteachers: [xclip]\nteacher_checkpoints: {{xclip: {good}}}\n")
    assert problems == [f"{path}: unknown clip_model 'ViT-Z-99'; open_clip knows {len(open_clip.list_models())} "
                        "models (open_clip.list_models()), plus tclib-tiny"]


def test_openai_weights_on_a_gelu_model_are_refused_without_download(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        pytest.fail("preflight downloaded or built a model")

    monkeypatch.setattr(open_clip, "create_model", no_download)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", no_download)
    path, problems = preflight_of(tmp_path, f"clip_model: ViT-B-32\nclip_pretrained: openai\ndata_root: {tmp_path}\n")
    assert problems == [f"{path}: clip_pretrained 'openai' holds weights trained with QuickGELU (OpenAI's), but "
                        "clip_model 'ViT-B-32' is built with GELU; use clip_model: ViT-B-32-quickgelu"]
    assert preflight_of(tmp_path, f"clip_model: ViT-B-32-quickgelu\nclip_pretrained: openai\n"
                                  f"data_root: {tmp_path}\n")[1] == []
    path, problems = preflight_of(tmp_path, f"clip_model: tclib-tiny\nclip_pretrained: laion-nonsense\n"
                                            f"data_root: {tmp_path}\n")
    assert problems == [f"{path}: clip_pretrained 'laion-nonsense' is neither a file nor a pretrained tag of "
                        "tclib-tiny (tags: [])"]


def test_a_local_clip_file_must_hold_the_models_keys(tmp_path):
    torch.manual_seed(0)
    state = load_clip("tclib-tiny", "").state_dict()
    good = save_checkpoint(state, tmp_path / "clip.pt")
    text = TINY + f"data_root: {tmp_path}\nclip_pretrained: {good}\n"
    assert preflight_of(tmp_path, text.replace("clip_pretrained: ''\n", ""))[1] == []
    del state["ln_final.bias"]
    wrong = save_checkpoint(state, tmp_path / "wrong.pt")
    path, problems = preflight_of(tmp_path, text.replace("clip_pretrained: ''\n", "").replace(str(good), str(wrong)))
    assert problems == [f"{path}: params key 'clip_pretrained': {wrong}: does not fit clip_model CLIP: missing keys "
                        "['ln_final.bias'] (1 in all)"]
    missing = tmp_path / "nope.pt"
    path, problems = preflight_of(tmp_path, text.replace("clip_pretrained: ''\n", "").replace(str(good), str(missing)))
    assert problems == [f"{path}: clip_pretrained file not found: {missing}"]


def reference_layout(state: dict) -> dict:
    """A student's state dict under the reference's names (TeachCLIP's training code, DataParallel)."""
    names = {"temporal.frame_position_embeddings.": "frame_position_embeddings.",
             "temporal.transformer.": "transformerClip.", "afa.fc1.": "frameLinear.", "afa.fc2.": "frameLinear2."}
    out = {}
    for key, value in state.items():
        prefix = next((p for p in names if key.startswith(p)), None)
        out["module." + (names[prefix] + key[len(prefix):] if prefix else key)] = value
    return out


def test_a_student_checkpoint_in_the_reference_layout_loads_into_its_run(tmp_path):
    torch.manual_seed(0)
    student = CLIP4Clip(load_clip("tclib-tiny", ""), temporal="seqTransf", afa=True, temporal_layers=2)
    state = reference_layout(student.state_dict())
    assert "module.transformerClip.resblocks.0.attn.in_proj_weight" in state and "module.frameLinear.weight" in state
    path = save_checkpoint(state, tmp_path / "pytorch_model.bin.4")
    text = (TINY + f"data_root: {tmp_path}\nteachers: [xclip]\nruns: [teachclip, clip4clip-seqTransf]\n"
            f"student_checkpoints: {{teachclip: {path}, clip4clip-seqTransf: {path}}}\n")
    # seqTransf without AFA ignores frameLinear*, as the reference does
    assert preflight_of(tmp_path, text)[1] == []
    # a meanP student has no seqTransf head: the file's head is reported under the file's names
    params_path, problems = preflight_of(tmp_path, text.replace("clip4clip-seqTransf", "clip4clip-meanP"))
    temporal = [k for k in state if k.startswith(("module.frame_position", "module.transformerClip."))]
    assert len(problems) == 1
    assert re.fullmatch(rf"{re.escape(str(params_path))}: params key 'student_checkpoints': clip4clip-meanP: "
                        rf"{re.escape(str(path))}: does not fit CLIP4Clip: unexpected keys "
                        rf"\['frame_position_embeddings\.weight', 'transformerClip\.resblocks\.0\..*\] \.\.\. "
                        rf"\({len(temporal)} in all\)", problems[0])


def test_data_root_is_needed_unless_synthetic_writes_it(in_tmp):
    path, problems = preflight_of(in_tmp, TINY + "data_root: data/synthetic\n")
    assert problems == [f"{path}: params key 'data_root': folder not found: {in_tmp / 'data/synthetic'}"]
    assert preflight_of(in_tmp, TINY + "data_root: data/synthetic\nsynthetic: true\n")[1] == []
    (in_tmp / "a_file").write_text("")
    path, problems = preflight_of(in_tmp, TINY + f"data_root: {in_tmp / 'a_file'}\n")
    assert problems == [f"{path}: params key 'data_root': not a folder: {in_tmp / 'a_file'}"]
    # a layout whose splits are files under the root: each split must be there
    (in_tmp / "tc" / "VideoSet").mkdir(parents=True)
    (in_tmp / "tc" / "VideoSet" / "msrvtt1k-train.txt").write_text("video0\n")
    path, problems = preflight_of(in_tmp, TINY + "dataset: teachclip\ndata_root: tc\ntrain_split: msrvtt1k-train\n"
                                                 "test_split: msrvtt1k-test\n")
    assert problems == [f"{path}: params key 'test_split': no teachclip split 'msrvtt1k-test' under "
                        f"{in_tmp / 'tc'} (found: ['msrvtt1k-train'])"]


def test_words_and_frames_must_fit_the_text_context(tmp_path):
    # tclib-tiny's text context is 32 tokens; the seqTransf head has one frame position per token
    text = f"clip_model: tclib-tiny\nclip_pretrained: ''\ndata_root: {tmp_path}\nmax_words: 40\nmax_frames: 33\n"
    path, problems = preflight_of(tmp_path, text)
    assert problems == [
        f"{path}: params key 'max_words' must be ≤ 32, the text context length of clip_model tclib-tiny, got 40",
        f"{path}: params key 'max_frames' must be ≤ 32, the frame positions of the seqTransf head (the text "
        "context length of clip_model tclib-tiny), got 33",
    ]
    # no seqTransf head: a meanP student, and TS2-Net (whose positions wrap, as the reference's)
    fits = text.replace("max_words: 40", "max_words: 32") + "runs: [clip4clip-meanP]\nteachers: [ts2net]\n"
    assert preflight_of(tmp_path, fits)[1] == []
    assert preflight_of(tmp_path, fits.replace("[ts2net]", "[ts2net, xclip]"))[1] == problems[1:]  # X-CLIP has one


def test_preflight_writes_nothing_and_leaves_the_random_state(tmp_path, xclip_state):
    good = save_checkpoint(xclip_state, tmp_path / "xclip.bin")
    path = tmp_path / "exp.yaml"
    path.write_text(TINY + f"data_root: {tmp_path}\nteachers: [xclip]\nteacher_checkpoints: {{xclip: {good}}}\n")
    params = load_params(path)
    before, files = torch.get_rng_state(), sorted(os.listdir(tmp_path))
    preflight.check(params, source=str(path))
    assert torch.equal(torch.get_rng_state(), before) and sorted(os.listdir(tmp_path)) == files


@pytest.mark.parametrize("path", sorted(PARAMS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_params_lack_only_their_data_and_checkpoints_here(path, in_tmp):
    params = load_params(path)
    expected = [] if params.synthetic else [
        f"{path}: params key 'data_root': folder not found: {params.data_root}"]
    expected += [f"{path}: params key 'teacher_checkpoints': {name}: file not found: {file}"
                 for name, file in params.teacher_checkpoints.items()]
    expected += [f"{path}: params key 'student_checkpoints': {run}: file not found: {file}"
                 for run, file in params.student_checkpoints.items()]
    assert preflight.problems(params, source=str(path)) == expected
    if path.name == "demo.yaml":
        assert expected == []


ONE_GPU_EACH = "use device: cuda — each process takes the GPU of its local rank — or gpus: 1"


@pytest.mark.parametrize("gpus,text,line", [
    (2, "device: cuda:1\ngpus: 2", f"params key 'device' must not name one GPU (cuda:1) for gpus: 2 processes: "
                                   f"{ONE_GPU_EACH}"),
    (1, "device: cuda\ngpus: 2", "params key 'gpus' asks for 2 processes on GPUs (device: cuda), but this machine "
                                 "has 1 GPU (cuda:0): use at most gpus: 1 (one process per GPU) or device: cpu"),
    (3, "gpus: 4", "params key 'gpus' asks for 4 processes on GPUs (device: auto), but this machine has 3 GPUs "
                   "(cuda:0 to cuda:2): use at most gpus: 3 (one process per GPU) or device: cpu"),
    (0, "device: cuda", "params key 'device' is cuda, but this machine has no GPU (torch.cuda.is_available() is "
                        "False): use device: cpu or device: auto"),
    (2, "device: cuda:2", "params key 'device' is cuda:2, but this machine has 2 GPUs (cuda:0 to cuda:1): use one "
                          "of them, or device: cuda"),
])
def test_devices_and_processes_must_fit_this_machines_gpus(tmp_path, gpus_here, gpus, text, line):
    gpus_here(gpus)
    path, problems = preflight_of(tmp_path, TINY + f"data_root: {tmp_path}\n{text}\n")
    assert problems == [f"{path}: {line}"]


@pytest.mark.parametrize("gpus,text", [
    (0, "device: cpu\ngpus: 2"), (2, "device: cpu\ngpus: 2"),  # gloo processes on the CPUs
    (0, "gpus: 2"), (2, "device: cuda\ngpus: 2"), (2, "device: cuda:1"), (1, ""),
])
def test_processes_on_the_cpus_or_one_per_gpu_pass(tmp_path, gpus_here, gpus, text):
    gpus_here(gpus)
    assert preflight_of(tmp_path, TINY + f"data_root: {tmp_path}\n{text}\n")[1] == []


def test_tclib_index_refuses_the_same_before_loading_anything(tmp_path, gpus_here, capsys):
    from tclib.cli import main

    gpus_here(1)
    code = main(["index", str(tmp_path / "index"), "--videos", str(tmp_path), "--params", str(tmp_path / "none.yaml"),
                 "--device", "cuda:0", "--gpus", "2"])
    assert code == 2 and not (tmp_path / "index").exists()
    assert capsys.readouterr().err.splitlines() == [
        "tclib: error: --device must not name one GPU (cuda:0) for --gpus 2 processes: use --device cuda — each "
        "process takes the GPU of its local rank — or --gpus 1",
        "--gpus asks for 2 processes on GPUs (--device cuda:0), but this machine has 1 GPU (cuda:0): use at most "
        "--gpus 1 (one process per GPU) or --device cpu"]
