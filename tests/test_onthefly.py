"""Tests of tclib.data.onthefly: decoding on the fly gives the frame cache's frames, and names a bad file."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import SAMPLING

from tclib.data import (
    DecodedFrames,
    PairDataset,
    build_frame_cache,
    read_annotations,
)
from tclib.data.rows import RowView
from tclib.errors import DataError


def _tokenize(texts: list[str]) -> torch.Tensor:
    return torch.tensor([[len(t), 1, 0] for t in texts])


def test_on_the_fly_equals_cache(synthetic_set, tmp_path):
    table = read_annotations("msrvtt", synthetic_set, "train")
    test = read_annotations("msrvtt", synthetic_set, "test")
    videos = dict(zip(table.video_id, table.video_path, strict=True)) | dict(zip(test.video_id, test.video_path, strict=True))
    assert len(videos) == 6
    cache = build_frame_cache(videos, tmp_path / "cache", SAMPLING, shard_size=4)
    decoded = DecodedFrames(videos, SAMPLING)
    assert decoded.video_ids == cache.video_ids and decoded.params == cache.params
    assert decoded.failed == {} and decoded.complete and len(decoded) == 6

    datasets = [PairDataset(list(table.caption), list(table.video_id), source, _tokenize)
                for source in (cache, decoded)]
    batches = [list(torch.utils.data.DataLoader(ds, batch_size=5)) for ds in datasets]
    assert len(batches[0]) == len(batches[1]) == -(-len(table) // 5)
    for from_cache, on_the_fly in zip(*batches, strict=True):
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
    pooled = DecodedFrames(videos, SAMPLING, workers=2)
    np.testing.assert_array_equal(pooled.frames_of(rows), cache.frames_of(rows))
    clone = pickle.loads(pickle.dumps(decoded))
    assert isinstance(clone.frames, RowView)
    np.testing.assert_array_equal(clone.get("video3")[0], cache.get("video3")[0])
    with pytest.raises(DataError, match="video9"):
        decoded.index_of("video9")


def test_on_the_fly_missing_or_corrupt_video(synthetic_set, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 1000)
    missing = tmp_path / "gone.mp4"
    videos = {"video0": str(synthetic_set / "videos" / "video0.mp4"), "gone": str(missing), "broken": str(corrupt)}
    decoded = DecodedFrames(videos, SAMPLING)  # nothing is read yet
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
