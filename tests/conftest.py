"""Fixtures shared by the test modules: the small demo run end to end, and small synthetic data sets."""

import os
import shutil
from pathlib import Path

import pytest

from tclib.cli import reproduce
from tclib.params import load_params

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


def small_demo() -> dict:
    """The demo, very small; its paths are relative to the project root."""
    return dict(exp="small", results_dir="results", data_root="data", synthetic_train_videos=16,
                synthetic_test_videos=8, decode_workers=1, seeds=[0, 1], pretrain_steps=4, pretrain_batch_size=32,
                epochs=1, teacher_epochs=1, batch_size=8, plot_videos=2)


def new_project(folder: Path) -> Path:
    """A project of its own in `folder`: params/demo.yaml, notebooks/ and results/paper_numbers.csv."""
    (folder / "params").mkdir(parents=True)
    shutil.copytree(ROOT / "notebooks", folder / "notebooks")
    shutil.copy(ROOT / "params" / "demo.yaml", folder / "params" / "demo.yaml")
    (folder / "results").mkdir()
    shutil.copy(ROOT / "results" / "paper_numbers.csv", folder / "results" / "paper_numbers.csv")
    return folder


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`tclib reproduce` of the small demo in a project of its own (params/, notebooks/), run from its root.
    Returns results/small/ and the run's params (paths absolute: later tests run elsewhere)."""
    project = new_project(tmp_path_factory.mktemp("project"))
    before = Path.cwd()
    os.chdir(project)
    try:
        exp_dir = reproduce("params/demo.yaml", Path("notebooks"), small_demo())
        params = load_params("params/demo.yaml", small_demo())
    finally:
        os.chdir(before)
    return exp_dir, params
