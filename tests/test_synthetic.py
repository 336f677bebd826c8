"""Tests of tclib.data.synthetic: the synthetic MSR-VTT-layout data set, its ground truth, and the
image-caption pairs the demo's backbone pretrains on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import N_TEST, N_TRAIN, SIZE, read_json_file

from tclib.data import (
    Sampling,
    read_annotations,
    read_video_frames,
    relevance_table,
    render_image_caption_pairs,
    write_synthetic_msrvtt,
)
from tclib.data.readers import COLUMNS
from tclib.data.scenes import BACKGROUNDS, COLORS, Concept, caption_for
from tclib.errors import DataError


def test_synthetic_round_trip(synthetic_set):
    data = read_json_file(synthetic_set / "MSRVTT_data.json")
    assert {"videos", "sentences"} <= set(data)
    assert [v["video_id"] for v in data["videos"]] == [f"video{i}" for i in range(N_TRAIN + N_TEST)]
    assert {v["split"] for v in data["videos"][:N_TRAIN]} == {"train"}
    assert {v["split"] for v in data["videos"][N_TRAIN:]} == {"test"}
    for v in data["videos"]:
        assert set(v) == {"video_id", "category", "url", "start time", "end time", "split", "id"}
    sentences = data["sentences"]
    assert len(sentences) == 4 * (N_TRAIN + N_TEST)
    assert [s["sen_id"] for s in sentences] == list(range(len(sentences)))
    for s in sentences:
        assert s["caption"] == s["caption"].lower() and s["caption"].strip()

    train = read_annotations("msrvtt", synthetic_set, "train")
    assert list(train.columns) == COLUMNS
    train_sents = [s for s in sentences if int(s["video_id"][5:]) < N_TRAIN]
    assert train["video_id"].tolist() == [s["video_id"] for s in train_sents]
    assert train["caption"].tolist() == [s["caption"] for s in train_sents]
    assert all(Path(p).is_file() for p in train["video_path"])
    assert train["video_path"].iloc[0] == str(synthetic_set / "videos" / "video0.mp4")

    per_video = read_annotations("msrvtt", synthetic_set, "train", expand_sentences=False)
    assert per_video["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN)]
    firsts = {}
    for s in train_sents:
        firsts.setdefault(s["video_id"], s["caption"])
    assert per_video["caption"].tolist() == [firsts[v] for v in per_video["video_id"]]

    test = read_annotations("msrvtt", synthetic_set, "test")
    assert test["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN, N_TRAIN + N_TEST)]
    by_video: dict[str, list[str]] = {}
    for s in sentences:
        by_video.setdefault(s["video_id"], []).append(s["caption"])
    for vid, caption in zip(test["video_id"], test["caption"], strict=True):
        assert caption in (by_video[vid][0], by_video[vid][2])  # first caption of a scene
    with open(synthetic_set / "MSRVTT_JSFUSION_test.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["key", "vid_key", "video_id", "sentence"]
    assert [r["key"] for r in rows] == [f"ret{i}" for i in range(N_TEST)]
    assert (synthetic_set / "MSRVTT_train.9k.csv").read_text().splitlines()[0] == "video_id"
    assert len((synthetic_set / "MSRVTT_train.7k.csv").read_text().splitlines()) == 1 + N_TRAIN * 7 // 9


def test_synthetic_relevance_and_content(synthetic_set):
    import decord

    rel = relevance_table(synthetic_set)
    sentences = read_json_file(synthetic_set / "MSRVTT_data.json")["sentences"]
    assert sorted(rel["sen_id"]) == [s["sen_id"] for s in sentences]
    meta = {m["video_id"]: m for m in read_json_file(synthetic_set / "video_meta.json")}
    for row in rel.itertuples():
        m = meta[row.video_id]
        assert row.duration == m["duration"] and 10 <= m["duration"] <= 14
        assert 2 <= len(row.relevant_seconds) <= 4
        assert row.relevant_seconds == list(range(row.relevant_seconds[0], row.relevant_seconds[-1] + 1))
        assert {m["seconds"][s] for s in row.relevant_seconds} == {f"scene{row.scene}"}
        concept = m["scenes"][row.scene]["concept"]
        assert concept["color"] in row.caption and concept["shape"] in row.caption
    for vid, m in meta.items():
        assert set(m["seconds"]) <= {"scene0", "scene1", "noise", "blank", "transition", "clutter"}
        vr = decord.VideoReader(str(synthetic_set / "videos" / f"{vid}.mp4"), num_threads=1)
        assert len(vr) == m["duration"] * m["fps"] == m["n_frames"]
        # a key-scene frame shows its object's color in the middle and its background at a corner
        sec = m["scenes"][0]["seconds"][0]
        frame = vr[sec * m["fps"]].asnumpy().astype(int)
        concept = m["scenes"][0]["concept"]
        mid = frame[SIZE // 2 - 1 : SIZE // 2 + 1, SIZE // 2 - 1 : SIZE // 2 + 1].reshape(-1, 3).mean(0)
        corner = frame[:3, :3].reshape(-1, 3).mean(0)
        assert np.abs(mid - COLORS[concept["color"]]).max() < 30
        assert np.abs(corner - BACKGROUNDS[concept["background"]]).max() < 30


def test_synthetic_deterministic_and_resume(synthetic_set, tmp_path):
    other = write_synthetic_msrvtt(tmp_path / "b", n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=3)
    for name in ("MSRVTT_data.json", "relevance.json", "video_meta.json", "MSRVTT_JSFUSION_test.csv"):
        assert (other / name).read_text() == (synthetic_set / name).read_text()
    a = read_video_frames(synthetic_set / "videos" / "video2.mp4", Sampling(12, 16))
    b = read_video_frames(other / "videos" / "video2.mp4", Sampling(12, 16))
    np.testing.assert_array_equal(a, b)

    stamps = {p.name: p.stat().st_mtime_ns for p in (other / "videos").iterdir()}
    (other / "videos" / "video1.mp4").unlink()
    (other / "videos" / "video4.mp4").write_bytes(b"broken")
    write_synthetic_msrvtt(other, n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=3)
    for name, stamp in stamps.items():
        changed = (other / "videos" / name).stat().st_mtime_ns != stamp
        assert changed == (name in ("video1.mp4", "video4.mp4")), name
    assert all(Path(p).is_file() for p in read_annotations("msrvtt", other, "train")["video_path"])
    assert not list((other / "videos").glob("*partial*"))

    seed4 = write_synthetic_msrvtt(tmp_path / "c", n_train=2, n_test=0, size=SIZE, seed=4)
    other_seed = read_json_file(seed4 / "MSRVTT_data.json")["sentences"]
    assert other_seed != read_json_file(synthetic_set / "MSRVTT_data.json")["sentences"][:8]


def test_render_image_caption_pairs():
    images, captions = render_image_caption_pairs(20, size=32, seed=1)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert len(captions) == 20 and all(c and c == c.lower() for c in captions)
    images2, captions2 = render_image_caption_pairs(20, size=32, seed=1)
    np.testing.assert_array_equal(images, images2)
    assert captions == captions2
    assert caption_for(Concept("orange", "cross", "navy"), 0) == "an orange cross on a navy background"


def test_relevance_table_errors(tmp_path):
    ann = tmp_path
    (ann / "relevance.json").write_text(json.dumps([{"video_id": "video0"}]))
    with pytest.raises(DataError, match="has no 'caption'"):
        relevance_table(ann)


def _write_and_hash(root: Path) -> str:
    """The md5 of every decoded frame of a one-video synthetic set written at `root`."""
    import hashlib

    import decord

    write_synthetic_msrvtt(root, n_train=1, n_test=0, size=64, seed=0)
    video = decord.VideoReader(str(root / "videos" / "video0.mp4"), num_threads=1)
    return hashlib.md5(video.get_batch(list(range(len(video)))).asnumpy().tobytes()).hexdigest()


def test_synthetic_videos_decode_identically_across_processes(tmp_path):
    # lossy x264 encoding gave slightly different frames from process to process; lossless must not
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:
        hashes = pool.map(_write_and_hash, [tmp_path / f"set{i}" for i in range(6)])
    assert len(set(hashes)) == 1
