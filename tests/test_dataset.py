"""Tests of tclib.data.dataset: caption-video pairs over a frame source, read item by item or a batch at once."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLING, video_files

from tclib.data import (
    PairDataset,
    build_frame_cache,
    read_annotations,
)
from tclib.errors import DataError


def test_pair_dataset(synthetic_set, tmp_path):
    cache = build_frame_cache(video_files(synthetic_set, 3), tmp_path / "cache", SAMPLING)
    df = read_annotations("msrvtt", synthetic_set, "train")
    df = df[df["video_id"].isin(cache.video_ids)]
    seen: list[list[str]] = []

    def tokenize(texts: list[str]) -> torch.Tensor:
        seen.append(texts)
        return torch.tensor([[len(t), 7, 0] for t in texts])

    ds = PairDataset(df["caption"].tolist(), df["video_id"].tolist(), cache, tokenize)
    assert len(seen) == 1 and len(ds) == len(df) == 12
    item = ds[5]
    assert item["tokens"].dtype == torch.long
    assert item["tokens"].tolist() == [len(df["caption"].iloc[5]), 7, 0]
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (6, 3, 16, 16)
    assert item["frame_mask"].dtype == torch.long and item["frame_mask"].shape == (6,)
    assert item["caption_index"] == 5 and item["video_index"] == cache.index_of(df["video_id"].iloc[5])
    torch.testing.assert_close(item["frames"], torch.from_numpy(cache.frames[item["video_index"]].copy()))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["frames"].shape == (4, 6, 3, 16, 16)

    with pytest.raises(DataError, match="empty caption for video1"):
        PairDataset(["a red circle", " "], ["video0", "video1"], cache, tokenize)
    with pytest.raises(DataError, match="video9"):
        PairDataset(["a red circle"], ["video9"], cache, tokenize)


def test_batch_reads_are_item_reads_collated(synthetic_set, tmp_path):
    cache = build_frame_cache(video_files(synthetic_set, 4), tmp_path / "cache", SAMPLING, shard_size=2)  # rows over shards
    df = read_annotations("msrvtt", synthetic_set, "train")
    df = df[df["video_id"].isin(cache.video_ids)]
    ds = PairDataset(df["caption"].tolist(), df["video_id"].tolist(), cache,
                     lambda texts: torch.tensor([[len(t), 7] for t in texts]))
    # a batch read in the batch's order: rows out of order, repeated rows
    batch = ds.batch([15, 0, 4, 5, 0])
    for i, item in zip([15, 0, 4, 5, 0], batch["frames"], strict=True):
        torch.testing.assert_close(item, ds[i]["frames"], rtol=0, atol=0)


def test_a_batch_read_in_a_loader_worker_lies_in_shared_memory(synthetic_set, tmp_path, monkeypatch):
    cache = build_frame_cache(video_files(synthetic_set, 2), tmp_path / "cache", SAMPLING)
    ds = PairDataset(["a red circle", "a blue square"], cache.video_ids, cache, lambda t: torch.ones(len(t), 3))
    assert not ds.batch([0, 1])["frames"].is_shared()
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())  # as inside a worker
    batch = ds.batch([1, 0])
    assert batch["frames"].is_shared()
    torch.testing.assert_close(batch["frames"][0], ds[1]["frames"], rtol=0, atol=0)
