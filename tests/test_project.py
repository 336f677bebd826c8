"""Relative paths mean the same folders from any working folder: the project root (tclib.project)."""

from pathlib import Path

import pytest

from tclib.params import load_params
from tclib.project import ROOT_ENV, project_root, relative_to_root, resolve_path


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project laid out like the kit (params/ and notebooks/) with a deep results folder."""
    monkeypatch.delenv(ROOT_ENV, raising=False)
    for folder in ("params", "notebooks", "results/exp/notebooks"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "params" / "exp.yaml").write_text(
        "exp: exp\ndata_root: data/msrvtt\nvideos_dir: ''\nclip_pretrained: openai\n"
        "teachers: [xclip]\nteacher_checkpoints: {xclip: ckpt/xclip.bin}\n"
        f"student_checkpoints: {{teachclip: {tmp_path / 'abs.bin'}}}\n")
    return tmp_path


def test_root_is_found_from_any_folder_below_it(project, monkeypatch):
    assert project_root(project / "results" / "exp" / "notebooks") == project
    assert project_root(project) == project
    monkeypatch.chdir(project / "results" / "exp" / "notebooks")
    assert project_root() == project


def test_root_outside_a_project_is_the_kits_checkout_else_the_current_folder(tmp_path, monkeypatch):
    import tclib.project

    monkeypatch.delenv(ROOT_ENV, raising=False)
    (tmp_path / "elsewhere").mkdir()
    # tclib installed from a checkout (as make does): that checkout
    assert tclib.project.KIT_CHECKOUT == Path(__file__).resolve().parent.parent
    assert project_root(tmp_path / "elsewhere") == tclib.project.KIT_CHECKOUT
    # installed as a plain package: the current folder
    monkeypatch.setattr(tclib.project, "KIT_CHECKOUT", None)
    assert project_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    # the environment overrides both
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert project_root(tmp_path / "elsewhere") == tmp_path


def test_params_paths_resolve_against_the_root_whatever_the_working_folder(project, monkeypatch):
    monkeypatch.chdir(project / "results" / "exp" / "notebooks")  # where JupyterLab starts the kernel
    P = load_params("params/exp.yaml")
    assert P.data_root == str(project / "data/msrvtt")
    assert P.results_dir == str(project / "results") and P.exp_dir == project / "results" / "exp"
    assert P.teacher_checkpoints == {"xclip": str(project / "ckpt/xclip.bin")}
    assert P.student_checkpoints == {"teachclip": str(project / "abs.bin")}  # absolute stays
    assert P.videos_dir == "" and P.clip_pretrained == "openai"  # "none" and a pretrained tag are no paths
    monkeypatch.chdir(project)
    assert load_params(project / "params" / "exp.yaml") == P


def test_paths_written_for_later_runs_are_relative_to_the_root(project):
    assert relative_to_root(project / "results" / "exp" / "params.yaml", project) == "results/exp/params.yaml"
    assert relative_to_root("/elsewhere/x.yaml", project) == "/elsewhere/x.yaml"
    assert resolve_path("results/exp/params.yaml", project) == str(project / "results/exp/params.yaml")
    assert resolve_path("local.pt", project) == str(project / "local.pt")
    assert load_params(project / "params" / "exp.yaml", {"clip_pretrained": "weights/clip.pt"}).clip_pretrained \
        == str(Path(project_root()) / "weights/clip.pt")
