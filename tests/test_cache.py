"""Tests of the frame sources: the sharded frame cache and decoding on the fly."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import tclib.data.cache as cache_mod
from tclib.data import FrameCache, PairDataset, build_frame_cache, pad_frames, read_msrvtt, read_video_frames
from tclib.data import write_synthetic_msrvtt
from tclib.data.cache import DecodedFrames, RowView
from tclib.errors import DataError

PARAMS = dict(max_frames=6, image_size=16, framerate=1, slice_framepos=2)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return write_synthetic_msrvtt(tmp_path_factory.mktemp("synth"), n_train=4, n_test=2, size=32, seed=5)


def _videos(root: Path, n: int) -> dict[str, str]:
    return {f"video{i}": str(root / "videos" / f"video{i}.mp4") for i in range(n)}


def _direct(spec, **params) -> tuple[np.ndarray, np.ndarray]:
    """What a frame source must hold for one video: read_video_frames, then pad_frames."""
    params = {**PARAMS, **params}
    path, start, end = (spec, None, None) if isinstance(spec, str) else spec
    frames = read_video_frames(path, params["max_frames"], params["image_size"], framerate=params["framerate"],
                               slice_framepos=params["slice_framepos"], start_time=start, end_time=end)
    return pad_frames(frames, params["max_frames"])


def _json(path: Path):
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- shards


def test_shards_layout_and_read_back(synth, tmp_path):
    videos = _videos(synth, 5)
    cache = build_frame_cache(videos, tmp_path / "cache", shard_size=2, workers=2, **PARAMS)

    names = sorted(p.name for p in (tmp_path / "cache").glob("*.npy"))
    assert names == [f"{kind}-{k:05d}.npy" for kind in ("frames", "mask") for k in range(3)]
    manifest = _json(tmp_path / "cache" / "manifest.json")
    assert [(s["frames"], s["start"], s["count"]) for s in manifest["shards"]] == [
        ("frames-00000.npy", 0, 2), ("frames-00001.npy", 2, 2), ("frames-00002.npy", 4, 1)]
    assert manifest["shard_size"] == 2 and manifest["complete"] and manifest["done"] == [1] * 5
    assert len(cache.shards) == 3 and cache.complete and not cache.failed
    assert np.load(tmp_path / "cache" / "frames-00002.npy", mmap_mode="r").shape == (1, 6, 3, 16, 16)

    direct = [_direct(videos[v]) for v in videos]
    ref_frames = np.stack([f for f, _ in direct])
    ref_mask = np.stack([m for _, m in direct])
    assert ref_mask.sum() > 0
    for vid, (frames, mask) in zip(videos, direct):
        got_frames, got_mask = cache.get(vid)
        np.testing.assert_array_equal(got_frames, frames)
        np.testing.assert_array_equal(got_mask, mask)

    # the views: len, shape, ints, slices and integer arrays across shards
    assert len(cache.frames) == 5 and cache.frames.shape == (5, 6, 3, 16, 16) and cache.frames.dtype == np.uint8
    assert cache.mask.shape == (5, 6) and cache.mask.dtype == np.int64 and cache.frames.ndim == 5
    order = [4, 0, 3, 3, 1]
    np.testing.assert_array_equal(cache.frames[order], ref_frames[order])
    np.testing.assert_array_equal(cache.frames[np.array(order)], ref_frames[order])
    np.testing.assert_array_equal(cache.frames_of(order), ref_frames[order])
    np.testing.assert_array_equal(cache.mask_of(order), ref_mask[order])
    np.testing.assert_array_equal(np.asarray(cache.mask[order]), ref_mask[order])
    np.testing.assert_array_equal(cache.frames[1:4], ref_frames[1:4])
    np.testing.assert_array_equal(cache.frames[::2], ref_frames[::2])
    np.testing.assert_array_equal(cache.frames[-1], ref_frames[4])
    np.testing.assert_array_equal(cache.mask[...], ref_mask)
    np.testing.assert_array_equal(cache.mask[[2, 4], :3], ref_mask[[2, 4], :3])
    np.testing.assert_array_equal(cache.mask[ref_mask.sum(1) > 3], ref_mask[ref_mask.sum(1) > 3])
    np.testing.assert_array_equal(np.asarray(cache.frames), ref_frames)
    assert cache.frames_of([]).shape == (0, 6, 3, 16, 16)
    row = cache.frames[0]
    row[:] = 255  # a fresh array: changing it leaves the cache as it is
    np.testing.assert_array_equal(cache.frames[0], ref_frames[0])
    with pytest.raises(IndexError):
        cache.frames[5]
    with pytest.raises(IndexError):
        cache.frames_of([0, 7])

    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.frames[[4, 1]], ref_frames[[4, 1]])


def test_resume_across_shards(synth, tmp_path, monkeypatch):
    videos = _videos(synth, 5)
    real = cache_mod.read_video_frames
    calls: list[str] = []

    def flaky(path, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(Path(path).stem)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "read_video_frames", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_frame_cache(videos, tmp_path / "cache", shard_size=2, **PARAMS)
    manifest = _json(tmp_path / "cache" / "manifest.json")
    assert manifest["done"] == [1, 1, 1, 0, 0] and len(manifest["shards"]) == 3
    partial = FrameCache(tmp_path / "cache")
    assert not partial.complete
    np.testing.assert_array_equal(partial.get("video2")[0], _direct(videos["video2"])[0])
    with pytest.raises(DataError, match="not decoded yet"):
        partial.index_of("video3")

    def counting(path, *args, **kwargs):
        calls.append(Path(path).stem)
        return real(path, *args, **kwargs)

    calls.clear()
    monkeypatch.setattr(cache_mod, "read_video_frames", counting)
    # another shard_size on resume: the cache keeps the shards it has
    cache = build_frame_cache(videos, tmp_path / "cache", shard_size=512, **PARAMS)
    assert calls == ["video3", "video4"] and cache.complete and len(cache.shards) == 3
    for vid in videos:
        np.testing.assert_array_equal(cache.get(vid)[0], _direct(videos[vid])[0])

    # a lost shard is decoded again, the others are kept
    (tmp_path / "cache" / "frames-00001.npy").unlink()
    calls.clear()
    cache = build_frame_cache(videos, tmp_path / "cache", shard_size=2, **PARAMS)
    assert calls == ["video2", "video3"] and cache.complete
    np.testing.assert_array_equal(cache.frames_of([2, 3]), np.stack([_direct(videos[v])[0] for v in ("video2", "video3")]))

    calls.clear()
    build_frame_cache(videos, tmp_path / "cache", shard_size=2, **PARAMS)
    assert calls == []


def test_legacy_single_file_cache_reads_as_one_shard(synth, tmp_path):
    videos = _videos(synth, 3)
    built = build_frame_cache(videos, tmp_path / "new", shard_size=2, **PARAMS)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    np.save(legacy / "frames.npy", np.asarray(built.frames))
    np.save(legacy / "mask.npy", np.asarray(built.mask))
    (legacy / "index.json").write_text(json.dumps(list(videos)))
    (legacy / "manifest.json").write_text(json.dumps(
        {"version": 1, "params": PARAMS, "n_videos": 3, "complete": True, "n_done": 3, "done": [1, 1, 1],
         "failed": {}}))
    cache = FrameCache(legacy, expect=PARAMS)
    assert len(cache.shards) == 1
    np.testing.assert_array_equal(cache.frames[[2, 0]], built.frames[[2, 0]])
    np.save(legacy / "mask.npy", np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(DataError, match=r"mask\.npy.*\(3, 5\)"):
        FrameCache(legacy)


# ----------------------------------------------------------------------------- segments


def test_segments(synth, tmp_path):
    path = str(synth / "videos" / "video1.mp4")
    videos = {"video1@2-6": (path, 2, 6), "video1@0-3": (path, 0, 3), "video1": path, "video2@5-9": (
        str(synth / "videos" / "video2.mp4"), np.int64(5), 9)}
    cache = build_frame_cache(videos, tmp_path / "cache", shard_size=3, **PARAMS)
    assert cache.video_ids == list(videos) and cache.complete
    assert cache.segments == {"video1@2-6": [2, 6], "video1@0-3": [0, 3], "video2@5-9": [5, 9]}
    for clip, spec in videos.items():
        frames, mask = cache.get(clip)
        ref_frames, ref_mask = _direct(spec if isinstance(spec, str) else (spec[0], int(spec[1]), spec[2]))
        np.testing.assert_array_equal(frames, ref_frames)
        np.testing.assert_array_equal(mask, ref_mask)
    # a segment of 2..6 at 1 frame per second: the 5 seconds 2, 3, 4, 5, 6
    assert cache.get("video1@2-6")[1].sum() == 5 and cache.get("video1@0-3")[1].sum() == 4
    assert not np.array_equal(cache.get("video1@2-6")[0], cache.get("video1")[0])

    decoded = DecodedFrames(videos, **PARAMS)
    np.testing.assert_array_equal(decoded.frames[[0, 3]], cache.frames[[0, 3]])
    np.testing.assert_array_equal(decoded.mask[...], cache.mask[...])

    with pytest.raises(DataError, match=r"video1@2-6.*\[2, 6\].*\[2, 7\]"):
        build_frame_cache({**videos, "video1@2-6": (path, 2, 7)}, tmp_path / "cache", shard_size=3, **PARAMS)
    for bad in [(path, 6, 2), (path, 2, None), (path, 1.5, 3), (path, 2), (None, 1, 2)]:
        with pytest.raises(DataError, match="video1@x"):
            build_frame_cache({"video1@x": bad}, tmp_path / "bad", **PARAMS)
        with pytest.raises(DataError, match="video1@x"):
            DecodedFrames({"video1@x": bad}, **PARAMS)


# ----------------------------------------------------------------------------- on the fly


def _tokenize(texts: list[str]) -> torch.Tensor:
    return torch.tensor([[len(t), 1, 0] for t in texts])


def test_on_the_fly_equals_cache(synth, tmp_path):
    table = read_msrvtt(synth, "train")
    test = read_msrvtt(synth, "test")
    videos = dict(zip(table.video_id, table.video_path)) | dict(zip(test.video_id, test.video_path))
    assert len(videos) == 6
    cache = build_frame_cache(videos, tmp_path / "cache", shard_size=4, **PARAMS)
    decoded = DecodedFrames(videos, **PARAMS)
    assert decoded.video_ids == cache.video_ids and decoded.params == cache.params
    assert decoded.failed == {} and decoded.complete and len(decoded) == 6

    datasets = [PairDataset(list(table.caption), list(table.video_id), source, _tokenize)
                for source in (cache, decoded)]
    batches = [list(torch.utils.data.DataLoader(ds, batch_size=5)) for ds in datasets]
    assert len(batches[0]) == len(batches[1]) == -(-len(table) // 5)
    for from_cache, on_the_fly in zip(*batches):
        assert from_cache.keys() == on_the_fly.keys()
        for key in from_cache:
            torch.testing.assert_close(from_cache[key], on_the_fly[key], rtol=0, atol=0)
        assert on_the_fly["frames"].dtype == torch.uint8 and on_the_fly["frame_mask"].dtype == torch.long

    # the views the pipeline uses: row arrays, slices, len
    rows = [5, 1, 4]
    np.testing.assert_array_equal(decoded.frames[rows], cache.frames[rows])
    np.testing.assert_array_equal(np.asarray(decoded.mask[rows]), np.asarray(cache.mask[rows]))
    np.testing.assert_array_equal(decoded.frames_of(rows), cache.frames_of(rows))
    np.testing.assert_array_equal(decoded.mask_of(rows), cache.mask_of(rows))
    assert len(decoded.frames) == 6 and decoded.frames.shape == cache.frames.shape
    np.testing.assert_array_equal(decoded.frames[4:6], cache.frames[4:6])
    np.testing.assert_array_equal(decoded.frames[2], cache.frames[2])
    pooled = DecodedFrames(videos, workers=2, **PARAMS)
    np.testing.assert_array_equal(pooled.frames_of(rows), cache.frames_of(rows))
    clone = pickle.loads(pickle.dumps(decoded))
    assert isinstance(clone.frames, RowView)
    np.testing.assert_array_equal(clone.get("video3")[0], cache.get("video3")[0])
    with pytest.raises(DataError, match="video9"):
        decoded.index_of("video9")


def test_on_the_fly_missing_or_corrupt_video(synth, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 1000)
    missing = tmp_path / "gone.mp4"
    videos = {"video0": str(synth / "videos" / "video0.mp4"), "gone": str(missing), "broken": str(corrupt)}
    decoded = DecodedFrames(videos, **PARAMS)  # nothing is read yet
    ds = PairDataset(["a caption", "another", "a third"], list(videos), decoded, _tokenize)
    assert ds[0]["frames"].shape == (6, 3, 16, 16)
    with pytest.raises(DataError, match=f"not found: {missing}"):
        ds[1]
    with pytest.raises(DataError, match=str(corrupt)):
        ds[2]
    with pytest.raises(DataError, match=str(missing)):
        decoded.frames[[0, 1]]
    with pytest.raises(DataError, match=str(missing)):
        decoded.mask_of([1])
    with pytest.raises(DataError, match=str(corrupt)):
        decoded.get("broken")
