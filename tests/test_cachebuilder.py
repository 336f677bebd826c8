"""Tests of tclib.data.cachebuilder: building a frame cache, resuming it, its failures and storages."""

from __future__ import annotations

import csv
import dataclasses
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLING, direct, read_json_file, video_files

from tclib.data import (
    DecodedFrames,
    FrameCache,
    build_frame_cache,
    cachebuilder,
    read_padded_frames,
)
from tclib.errors import DataError


def test_cache_build_and_read(synthetic_set, tmp_path):
    videos = video_files(synthetic_set, 4)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 1000)
    videos["broken"] = str(corrupt)
    videos["missing"] = str(tmp_path / "missing.mp4")
    cache = build_frame_cache(videos, tmp_path / "cache", SAMPLING)

    assert len(cache) == 6 and cache.video_ids == list(videos)
    assert cache.frames.shape == (6, 6, 3, 16, 16) and cache.frames.dtype == np.uint8
    assert cache.mask.shape == (6, 6) and cache.mask.dtype == np.int64
    for vid in ("video0", "video3"):
        frames, mask = cache.get(vid)
        ref, ref_mask = read_padded_frames(videos[vid], SAMPLING)
        np.testing.assert_array_equal(frames, ref)
        np.testing.assert_array_equal(mask, ref_mask)
    assert cache.index_of("video2") == 2
    with pytest.raises(DataError, match="broken"):
        cache.index_of("broken")
    with pytest.raises(DataError, match="video77"):
        cache.index_of("video77")
    assert cache.mask[4].sum() == 0
    with open(tmp_path / "cache" / "failures.csv") as f:
        failures = list(csv.DictReader(f))
    assert [r["video"] for r in failures] == ["broken", "missing"]
    assert str(corrupt) in failures[0]["reason"]
    manifest = read_json_file(tmp_path / "cache" / "manifest.json")
    assert manifest["params"] == {**SAMPLING.as_dict(), "storage": "raw"} and manifest["n_videos"] == 6 and manifest["complete"]
    assert read_json_file(tmp_path / "cache" / "index.json") == list(videos)

    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.get("video1")[0], cache.get("video1")[0])

    # resume: nothing left to decode (the failures did not change on disk)
    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again")

    mp = pytest.MonkeyPatch()
    mp.setattr(cachebuilder, "read_padded_frames", no_decode)
    try:
        again = build_frame_cache(videos, tmp_path / "cache", SAMPLING)
    finally:
        mp.undo()
    np.testing.assert_array_equal(again.frames, cache.frames)

    # a failed video whose file appears is retried
    shutil.copy(videos["video0"], tmp_path / "missing.mp4")
    fixed = build_frame_cache(videos, tmp_path / "cache", SAMPLING)
    np.testing.assert_array_equal(fixed.get("missing")[0], cache.get("video0")[0])
    assert list(fixed.failed) == ["broken"]


def test_cache_param_mismatch(synthetic_set, tmp_path):
    videos = video_files(synthetic_set, 2)
    build_frame_cache(videos, tmp_path / "cache", SAMPLING)
    with pytest.raises(DataError, match="max_frames=6.*max_frames=8"):
        build_frame_cache(videos, tmp_path / "cache", dataclasses.replace(SAMPLING, max_frames=8))
    with pytest.raises(DataError, match="slice_framepos"):
        build_frame_cache(videos, tmp_path / "cache", dataclasses.replace(SAMPLING, slice_framepos=0))
    with pytest.raises(DataError, match="another list of videos"):
        build_frame_cache(video_files(synthetic_set, 3), tmp_path / "cache", SAMPLING)
    with pytest.raises(DataError, match="image_size"):
        FrameCache(tmp_path / "cache", expect=dataclasses.replace(SAMPLING, image_size=32))
    assert len(FrameCache(tmp_path / "cache", expect=SAMPLING)) == 2
    with pytest.raises(DataError, match="manifest.json"):
        FrameCache(tmp_path / "nowhere")


def test_jpeg_cache_reads_back_the_raw_frames_within_jpeg_error(synthetic_set, tmp_path):
    videos = video_files(synthetic_set, 4)
    videos["missing"] = str(tmp_path / "missing.mp4")
    raw = build_frame_cache(videos, tmp_path / "raw", SAMPLING, shard_size=3)
    jpeg = build_frame_cache(videos, tmp_path / "jpeg", SAMPLING, shard_size=3, storage="jpeg", jpeg_quality=95)
    files = sorted(p.name for p in (tmp_path / "jpeg").iterdir())
    assert [f for f in files if f.startswith("frames")] == ["frames-00000.index.npy", "frames-00000.jpeg",
                                                            "frames-00001.index.npy", "frames-00001.jpeg"]
    assert read_json_file(tmp_path / "jpeg" / "manifest.json")["params"] == {**SAMPLING.as_dict(), "storage": "jpeg", "jpeg_quality": 95}
    np.testing.assert_array_equal(jpeg.mask, raw.mask)
    rows = np.array([4, 0, 3, 1, 2])  # across both shards, out of order, the failed video included
    a, b = raw.frames_of(rows).astype(int), jpeg.frames_of(rows).astype(int)
    real = raw.mask_of(rows).astype(bool)
    assert (b[~real] == 0).all()  # padding and the failed video: exact zeros, stored as nothing
    # lossy but close: 16-px frames of hard-edged shapes are JPEG's worst case (2.1 grey levels here)
    assert np.abs(a - b)[real].mean() < 3.0 and np.abs(a - b).max() < 64
    # only real frames take bytes: one JPEG each, side by side (sizes pay off at 224 px: benchmarks/frames.py)
    lengths = np.concatenate([np.load(tmp_path / "jpeg" / f"frames-0000{k}.index.npy")[..., 1] for k in (0, 1)])
    assert ((lengths > 0) == raw.mask[:].astype(bool)).all()
    assert lengths.sum() == sum((tmp_path / "jpeg" / f).stat().st_size for f in files if f.endswith(".jpeg"))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(jpeg)).get("video1")[0], jpeg.get("video1")[0])

    mp = pytest.MonkeyPatch()
    mp.setattr(cachebuilder, "read_padded_frames", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    try:  # resumed: nothing decoded again, and the same frames
        again = build_frame_cache(videos, tmp_path / "jpeg", SAMPLING, storage="jpeg", jpeg_quality=95)
    finally:
        mp.undo()
    np.testing.assert_array_equal(again.frames, jpeg.frames)
    with pytest.raises(DataError, match="storage='jpeg'.*storage='raw'"):
        build_frame_cache(videos, tmp_path / "jpeg", SAMPLING)
    with pytest.raises(DataError, match="jpeg_quality=95.*jpeg_quality=90"):
        build_frame_cache(videos, tmp_path / "jpeg", SAMPLING, storage="jpeg", jpeg_quality=90)
    with pytest.raises(DataError, match="storage must be one of raw, jpeg"):
        build_frame_cache(videos, tmp_path / "png", SAMPLING, storage="png")


def test_an_interrupted_jpeg_build_resumes_without_losing_finishedvideo_files(synthetic_set, tmp_path, monkeypatch):
    videos = video_files(synthetic_set, 4)
    decode = cachebuilder.read_padded_frames
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return decode(*args, **kwargs)

    monkeypatch.setattr(cachebuilder, "read_padded_frames", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_frame_cache(videos, tmp_path / "jpeg", SAMPLING, storage="jpeg")
    manifest = read_json_file(tmp_path / "jpeg" / "manifest.json")
    assert manifest["done"] == [1, 1, 0, 0]
    calls.clear()
    monkeypatch.setattr(cachebuilder, "read_padded_frames", decode)
    resumed = build_frame_cache(videos, tmp_path / "jpeg", SAMPLING, storage="jpeg")
    fresh = build_frame_cache(videos, tmp_path / "fresh", SAMPLING, storage="jpeg")
    np.testing.assert_array_equal(resumed.frames, fresh.frames)  # JPEG encoding is deterministic


def test_cache_workers(synthetic_set, tmp_path):
    videos = video_files(synthetic_set, 3)
    serial = build_frame_cache(videos, tmp_path / "serial", SAMPLING)
    pooled = build_frame_cache(videos, tmp_path / "pooled", SAMPLING, workers=2)
    np.testing.assert_array_equal(serial.frames, pooled.frames)
    np.testing.assert_array_equal(serial.mask, pooled.mask)


def test_resume_across_shards(synthetic_set, tmp_path, monkeypatch):
    videos = video_files(synthetic_set, 5)
    real = cachebuilder.read_padded_frames
    calls: list[str] = []

    def flaky(path, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(Path(path).stem)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cachebuilder, "read_padded_frames", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_frame_cache(videos, tmp_path / "cache", SAMPLING, shard_size=2)
    manifest = read_json_file(tmp_path / "cache" / "manifest.json")
    assert manifest["done"] == [1, 1, 1, 0, 0] and len(manifest["shards"]) == 3
    partial = FrameCache(tmp_path / "cache")
    assert not partial.complete
    np.testing.assert_array_equal(partial.get("video2")[0], direct(videos["video2"])[0])
    with pytest.raises(DataError, match="not decoded yet"):
        partial.index_of("video3")

    def counting(path, *args, **kwargs):
        calls.append(Path(path).stem)
        return real(path, *args, **kwargs)

    calls.clear()
    monkeypatch.setattr(cachebuilder, "read_padded_frames", counting)
    # another shard_size on resume: the cache keeps the shards it has
    cache = build_frame_cache(videos, tmp_path / "cache", SAMPLING, shard_size=512)
    assert calls == ["video3", "video4"] and cache.complete and len(cache.shards) == 3
    for vid in videos:
        np.testing.assert_array_equal(cache.get(vid)[0], direct(videos[vid])[0])

    # a lost shard is decoded again, the others are kept
    (tmp_path / "cache" / "frames-00001.npy").unlink()
    calls.clear()
    cache = build_frame_cache(videos, tmp_path / "cache", SAMPLING, shard_size=2)
    assert calls == ["video2", "video3"] and cache.complete
    np.testing.assert_array_equal(cache.frames_of([2, 3]), np.stack([direct(videos[v])[0] for v in ("video2", "video3")]))

    calls.clear()
    build_frame_cache(videos, tmp_path / "cache", SAMPLING, shard_size=2)
    assert calls == []


def test_segments(synthetic_set, tmp_path):
    path = str(synthetic_set / "videos" / "video1.mp4")
    videos = {"video1@2-6": (path, 2, 6), "video1@0-3": (path, 0, 3), "video1": path, "video2@5-9": (
        str(synthetic_set / "videos" / "video2.mp4"), np.int64(5), 9)}
    cache = build_frame_cache(videos, tmp_path / "cache", SAMPLING, shard_size=3)
    assert cache.video_ids == list(videos) and cache.complete
    assert cache.segments == {"video1@2-6": [2, 6], "video1@0-3": [0, 3], "video2@5-9": [5, 9]}
    for clip, spec in videos.items():
        frames, mask = cache.get(clip)
        ref_frames, ref_mask = direct(spec if isinstance(spec, str) else (spec[0], int(spec[1]), spec[2]))
        np.testing.assert_array_equal(frames, ref_frames)
        np.testing.assert_array_equal(mask, ref_mask)
    # a segment of 2..6 at 1 frame per second: the 5 seconds 2, 3, 4, 5, 6
    assert cache.get("video1@2-6")[1].sum() == 5 and cache.get("video1@0-3")[1].sum() == 4
    assert not np.array_equal(cache.get("video1@2-6")[0], cache.get("video1")[0])

    decoded = DecodedFrames(videos, SAMPLING)
    np.testing.assert_array_equal(decoded.frames[[0, 3]], cache.frames[[0, 3]])
    np.testing.assert_array_equal(decoded.mask[...], cache.mask[...])

    with pytest.raises(DataError, match=r"video1@2-6.*\[2, 6\].*\[2, 7\]"):
        build_frame_cache({**videos, "video1@2-6": (path, 2, 7)}, tmp_path / "cache", SAMPLING, shard_size=3)
    for bad in [(path, 6, 2), (path, 2, None), (path, 1.5, 3), (path, 2), (None, 1, 2)]:
        with pytest.raises(DataError, match="video1@x"):
            build_frame_cache({"video1@x": bad}, tmp_path / "bad", SAMPLING)
        with pytest.raises(DataError, match="video1@x"):
            DecodedFrames({"video1@x": bad}, SAMPLING)
