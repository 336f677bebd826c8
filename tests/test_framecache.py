"""Tests of tclib.data.framecache: the shard layout read back through every kind of index, and caches
written before shards existed."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from conftest import SAMPLING, direct, read_json_file, video_files

from tclib.data import FrameCache, build_frame_cache
from tclib.errors import DataError


def test_shards_layout_and_read_back(synthetic_set, tmp_path):
    videos = video_files(synthetic_set, 5)
    cache = build_frame_cache(videos, tmp_path / "cache", SAMPLING, shard_size=2, workers=2)

    names = sorted(p.name for p in (tmp_path / "cache").glob("*.npy"))
    assert names == [f"{kind}-{k:05d}.npy" for kind in ("frames", "mask") for k in range(3)]
    manifest = read_json_file(tmp_path / "cache" / "manifest.json")
    assert [(s["frames"], s["start"], s["count"]) for s in manifest["shards"]] == [
        ("frames-00000.npy", 0, 2), ("frames-00001.npy", 2, 2), ("frames-00002.npy", 4, 1)]
    assert manifest["shard_size"] == 2 and manifest["complete"] and manifest["done"] == [1] * 5
    assert len(cache.shards) == 3 and cache.complete and not cache.failed
    assert np.load(tmp_path / "cache" / "frames-00002.npy", mmap_mode="r").shape == (1, 6, 3, 16, 16)

    expected = [direct(videos[v]) for v in videos]
    ref_frames = np.stack([f for f, _ in expected])
    ref_mask = np.stack([m for _, m in expected])
    assert ref_mask.sum() > 0
    for vid, (frames, mask) in zip(videos, expected, strict=True):
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


def test_legacy_single_file_cache_reads_as_one_shard(synthetic_set, tmp_path):
    videos = video_files(synthetic_set, 3)
    built = build_frame_cache(videos, tmp_path / "new", SAMPLING, shard_size=2)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    np.save(legacy / "frames.npy", np.asarray(built.frames))
    np.save(legacy / "mask.npy", np.asarray(built.mask))
    (legacy / "index.json").write_text(json.dumps(list(videos)))
    (legacy / "manifest.json").write_text(json.dumps(
        {"version": 1, "params": SAMPLING.as_dict(), "n_videos": 3, "complete": True, "n_done": 3, "done": [1, 1, 1],
         "failed": {}}))
    cache = FrameCache(legacy, expect=SAMPLING)
    assert len(cache.shards) == 1
    np.testing.assert_array_equal(cache.frames[[2, 0]], built.frames[[2, 0]])
    np.save(legacy / "mask.npy", np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(DataError, match=r"mask\.npy.*\(3, 5\)"):
        FrameCache(legacy)
