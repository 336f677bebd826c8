"""Tests of `tclib data check` and tclib.data.check_dataset on small data sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tclib.cli import main
from tclib.data import check_dataset, probe_video, write_synthetic_msrvtt


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """The synthetic MSR-VTT set: video0..video3 train, video4..video5 test (written once)."""
    return write_synthetic_msrvtt(tmp_path_factory.mktemp("synthetic"), n_train=4, n_test=2, size=32)


@pytest.fixture
def dataset(synthetic, tmp_path) -> Path:
    return Path(shutil.copytree(synthetic, tmp_path / "msrvtt"))


def train_captions(root: Path) -> int:
    data = json.loads((root / "MSRVTT_data.json").read_text())
    train = {f"video{i}" for i in range(4)}
    return sum(s["video_id"] in train for s in data["sentences"])


def test_complete_set_exits_0(dataset, capsys):
    assert main(["data", "check", "msrvtt", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "all video files present and readable" in out
    assert "missing video files" not in out and "unreadable video files" not in out
    lines = out.splitlines()
    header = lines[1].split()
    assert header[:3] == ["split", "videos", "captions"]
    train_row, test_row = lines[2].split(), lines[3].split()
    # split, videos, captions, expected videos, expected captions, missing, unreadable
    assert train_row == ["train", "4", str(train_captions(dataset)), "9000", "180000", "0", "0"]
    assert test_row == ["test", "2", "2", "1000", "1000", "0", "0"]


def test_missing_and_corrupt_videos_exit_1(dataset, capsys):
    missing = dataset / "videos" / "video1.mp4"
    corrupt = dataset / "videos" / "video4.mp4"
    missing.unlink()
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert main(["data", "check", "msrvtt", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert "missing video files (1):" in out and f"  {missing}" in out
    assert "unreadable video files (1):" in out and f"  {corrupt}: decord cannot open it" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:4]}
    assert rows["train"][-2:] == ["1", "0"] and rows["test"][-2:] == ["0", "1"]


def test_no_decode_only_checks_presence(dataset, capsys):
    (dataset / "videos" / "video5.mp4").write_bytes(b"not a video")
    assert main(["data", "check", "msrvtt", str(dataset), "--no-decode", "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "all video files present (not decoded)" in out
    assert out.splitlines()[2].split() == ["test", "2", "2", "1000", "1000", "0", "-"]
    (dataset / "videos" / "video5.mp4").unlink()
    assert main(["data", "check", "msrvtt", str(dataset), "--no-decode", "--split", "test"]) == 1
    assert str(dataset / "videos" / "video5.mp4") in capsys.readouterr().out


def test_videos_option_and_reader_options(dataset, tmp_path, capsys):
    moved = Path(shutil.move(str(dataset / "videos"), tmp_path / "elsewhere"))
    args = ["data", "check", "msrvtt", str(dataset), "--no-decode", "--split", "train"]
    assert main(args) == 1  # nothing under the root any more
    capsys.readouterr()
    assert main(args + ["--videos", str(moved), "-o", "train_csv=MSRVTT_train.7k.csv"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[3:5] == ["7010", "140200"]


def test_bad_annotations_exit_2(dataset, capsys):
    (dataset / "MSRVTT_JSFUSION_test.csv").unlink()
    assert main(["data", "check", "msrvtt", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert f"tclib: error: annotation file not found: {dataset / 'MSRVTT_JSFUSION_test.csv'}" in err
    assert main(["data", "check", "msrvtt", str(dataset), "-o", "expand_sentences=perhaps"]) == 2
    assert "true or false" in capsys.readouterr().err


def test_check_dataset_on_a_paragraph_set(tmp_path):
    root = tmp_path / "activitynet"
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "val_ids.json").write_text(json.dumps(["v_a", "v_b"]))
    (root / "Annotations" / "val_1.json").write_text(
        json.dumps({k: {"duration": 5.5, "sentences": ["x.", "y."]} for k in ("v_a", "v_b")})
    )
    (root / "VideoData").mkdir()
    (root / "VideoData" / "v_a.mp4").write_bytes(b"")
    report = check_dataset("activitynet", root, splits=["val_1"], decode=False)
    assert not report.ok
    [split] = report.splits
    assert (split.split, split.videos, split.captions) == ("test", 2, 2)
    assert (split.expected_videos, split.expected_captions) == (4917, 4917)
    assert split.missing == [str(root / "VideoData" / "v_b.mp4")]
    assert report.table()["unreadable files"].tolist() == [None]


def test_probe_video(synthetic, tmp_path):
    assert probe_video(str(synthetic / "videos" / "video0.mp4")) is None
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert probe_video(str(empty)).startswith("decord cannot open it")
