"""Fixtures shared by the test modules: the small demo run end to end, small synthetic data sets, and a
machine with as many GPUs as a test pretends."""

import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tclib.cli import reproduce
from tclib.data import Sampling, read_padded_frames, write_synthetic_msrvtt
from tclib.params import load_params

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


def small_demo() -> dict:
    """The demo, very small; its paths are relative to the project root."""
    return dict(exp="small", results_dir="results", data_root="data", synthetic_train_videos=16,
                synthetic_test_videos=8, decode_workers=1, seeds=[0, 1], pretrain_steps=4, pretrain_batch_size=32,
                epochs=1, teacher_epochs=1, batch_size=8, plot_videos=2)


def small_params(project: Path) -> Path:
    """params/small.yaml of a project: its demo.yaml with small_demo()'s values."""
    params = project / "params" / "small.yaml"
    params.write_text(yaml.safe_dump({**yaml.safe_load((project / "params" / "demo.yaml").read_text()), **small_demo()}))
    return params


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
        small_params(project)
        exp_dir = reproduce("params/small.yaml", Path("notebooks"))
        params = load_params("params/demo.yaml", small_demo())
    finally:
        os.chdir(before)
    return exp_dir, params


# ------------------------------------------------------------------------------------ small data sets

N_TRAIN, N_TEST, SIZE = 4, 2, 32  # the synthetic set of `synthetic_set`: video0..video3 train, video4..video5 test


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> Path:
    """The synthetic MSR-VTT set, written once (a test that breaks it works on a copy)."""
    return write_synthetic_msrvtt(tmp_path_factory.mktemp("synthetic"), n_train=N_TRAIN, n_test=N_TEST, size=SIZE,
                                  seed=3)


SAMPLING = Sampling(max_frames=6, image_size=16, framerate=1, slice_framepos=2)  # the frame sources' tests


def direct(spec):
    """What a frame source must hold for one video (a path or (path, start, end)) under SAMPLING:
    its frames padded to max_frames."""
    path, start, end = (spec, None, None) if isinstance(spec, str) else spec
    return read_padded_frames(path, SAMPLING, start, end)


def video_files(root: Path, n: int) -> dict[str, str]:
    """{video id: file} of the first `n` videos of a synthetic set."""
    return {f"video{i}": str(root / "videos" / f"video{i}.mp4") for i in range(n)}


def read_json_file(path: Path):
    import json

    return json.loads(path.read_text())


def write_mp4(path: Path, frames, fps) -> Path:
    """Encode RGB frames (n, H, W, 3) as a lossless H.264 mp4 at `fps` frames a second (an int or a Fraction)."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def flat_colors(n: int):
    """n clearly distinct RGB colors."""
    import numpy as np

    i = np.arange(n)
    return np.stack([(i * 40) % 256, (i * 97 + 60) % 256, 255 - (i * 9) % 256], axis=1).astype(np.uint8)


# ------------------------------------------------------------------------------------------ devices


@pytest.fixture
def gpus_here(monkeypatch):
    """Pretend this machine has `count` GPUs (torch.cuda.is_available / device_count)."""
    def pretend(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    return pretend
