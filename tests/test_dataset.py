"""Tests of tclib.data.dataset: caption-video pairs over a frame source, read item by item or a batch at once."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLING, video_files

from tclib.data import (
    DecodedFrames,
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


def test_batch_reads_give_the_batches_of_item_reads(synthetic_set, tmp_path):
    from tclib.train import TrainConfig, training_loader

    cache = build_frame_cache(video_files(synthetic_set, 4), tmp_path / "cache", SAMPLING, shard_size=2)  # rows over shards
    df = read_annotations("msrvtt", synthetic_set, "train")
    df = df[df["video_id"].isin(cache.video_ids)]
    ds = PairDataset(df["caption"].tolist(), df["video_id"].tolist(), cache,
                     lambda texts: torch.tensor([[len(t), 7] for t in texts]))
    assert ds.reads_batches and len(ds) == 16
    config = TrainConfig(epochs=1, batch_size=5, lr=1e-3, seed=0)
    batched = training_loader(ds, config, torch.Generator().manual_seed(3), torch.device("cpu"))
    items = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True, drop_last=True,
                                        generator=torch.Generator().manual_seed(3))
    # a source read item by item (decoding on the fly) goes through the same sampler
    decoded = PairDataset(df["caption"].tolist(), df["video_id"].tolist(),
                          DecodedFrames(video_files(synthetic_set, 4), SAMPLING),
                          lambda texts: torch.tensor([[len(t), 7] for t in texts]))
    assert not decoded.reads_batches
    one_by_one = training_loader(decoded, config, torch.Generator().manual_seed(3), torch.device("cpu"))
    for epoch in range(2):  # the generator advances the same way over epochs
        a, b, c = list(batched), list(items), list(one_by_one)
        assert len(a) == len(b) == len(c) == 3  # 16 items, batches of 5, the last partial one dropped
        for x, y, z in zip(a, b, c):
            assert x.keys() == y.keys() == z.keys()
            for key in x:
                torch.testing.assert_close(x[key], torch.as_tensor(y[key]), rtol=0, atol=0)
                torch.testing.assert_close(torch.as_tensor(z[key]), torch.as_tensor(y[key]), rtol=0, atol=0)
    # one batch read in the batch's order: rows out of order, repeated rows
    batch = ds.batch([15, 0, 4, 5, 0])
    for i, item in zip([15, 0, 4, 5, 0], batch["frames"]):
        torch.testing.assert_close(item, ds[i]["frames"], rtol=0, atol=0)
