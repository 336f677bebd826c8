"""Tests of tclib.loader: the training loader gives a plain shuffling DataLoader's batches, whatever
the number of workers and the frame source, with the objective's extras read alongside."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLING, video_files

from tclib.data import DecodedFrames, PairDataset, build_frame_cache, read_annotations
from tclib.loader import EpochBatches, loader_workers, on_device, to_device, training_loader


def tokenize(texts: list[str]) -> torch.Tensor:
    return torch.tensor([[len(t), 7] for t in texts])


@pytest.fixture(scope="module")
def pairs(synthetic_set, tmp_path_factory):
    """The training pairs of 4 videos over a frame cache (read by batches) and decoded on the fly (by items)."""
    cache = build_frame_cache(video_files(synthetic_set, 4), tmp_path_factory.mktemp("cache"), SAMPLING, shard_size=2)
    df = read_annotations("msrvtt", synthetic_set, "train")
    df = df[df["video_id"].isin(cache.video_ids)]
    cached = PairDataset(df["caption"].tolist(), df["video_id"].tolist(), cache, tokenize)
    decoded = PairDataset(df["caption"].tolist(), df["video_id"].tolist(),
                          DecodedFrames(video_files(synthetic_set, 4), SAMPLING), tokenize)
    assert cached.reads_batches and not decoded.reads_batches and len(cached) == 16
    return cached, decoded


def assert_same_batches(ours: list[dict], plain: list[dict]) -> None:
    assert len(ours) == len(plain) == 3  # 16 items, batches of 5, the last partial one dropped
    for x, y in zip(ours, plain, strict=True):
        assert x.keys() >= y.keys()
        for key in y:
            torch.testing.assert_close(torch.as_tensor(x[key]), torch.as_tensor(y[key]), rtol=0, atol=0)


@pytest.mark.parametrize("source", ["cache", "decoded"])
@pytest.mark.parametrize("workers", [0, 2])
def test_the_batches_of_a_plain_shuffling_loader_for_the_same_seed(pairs, source, workers):
    dataset = pairs[0] if source == "cache" else pairs[1]
    plain = torch.utils.data.DataLoader(pairs[0], batch_size=5, shuffle=True, drop_last=True,
                                        generator=torch.Generator().manual_seed(3))
    ours = training_loader(dataset, 5, workers, torch.Generator().manual_seed(3), pin=False)
    assert ours.persistent_workers == (workers > 0)
    for _ in range(3):  # the generator advances the same way over epochs (persistent workers too)
        assert_same_batches(list(ours), list(plain))


def test_a_resumed_generator_gives_the_next_epochs_batches(pairs):
    generator = torch.Generator().manual_seed(5)
    straight = training_loader(pairs[0], 5, 2, generator, pin=False)
    epochs = [list(straight) for _ in range(3)]
    state_after_one = torch.Generator().manual_seed(5)
    list(EpochBatches(16, 5, True, state_after_one))  # the draws of epoch 1
    generator = torch.Generator().manual_seed(0)
    resumed = training_loader(pairs[0], 5, 2, generator, pin=False)
    generator.set_state(state_after_one.get_state())  # as tclib.train resumes from an epoch's checkpoint
    assert_same_batches(list(resumed), epochs[1])
    assert_same_batches(list(resumed), epochs[2])


@pytest.mark.parametrize("source", ["cache", "decoded"])
def test_extras_are_read_with_each_batch_in_the_workers(pairs, source):
    dataset = pairs[0] if source == "cache" else pairs[1]

    def extras(batch: dict) -> dict:
        info = torch.utils.data.get_worker_info()
        return {"twice": batch["caption_index"] * 2, "worker": torch.tensor(-1 if info is None else info.id)}

    batches = list(training_loader(dataset, 5, 2, torch.Generator().manual_seed(3), pin=False, extras=extras))
    assert all(torch.equal(b["twice"], b["caption_index"] * 2) for b in batches)
    assert {int(b["worker"]) for b in batches} == {0, 1}  # read in the worker processes


def test_loader_workers(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert loader_workers(3, torch.device("cpu")) == 3
    assert loader_workers("auto", torch.device("cpu")) == 0  # the cores compute
    assert loader_workers("auto", torch.device("cuda")) == 8  # the reference's 8, of 16 cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert loader_workers("auto", torch.device("cuda")) == 3  # 16 cores / 4 processes, one for the process itself


def test_batches_moved_to_the_device_keep_their_structure_and_order():
    batches = [{"x": torch.full((2,), float(i)), "rows": [{"text": {"a": torch.ones(1) * i}}], "n": i}
               for i in range(4)]
    moved = list(on_device(iter(batches), torch.device("cpu")))
    assert [b["n"] for b in moved] == [0, 1, 2, 3]
    assert all(torch.equal(m["rows"][0]["text"]["a"], b["rows"][0]["text"]["a"]) for m, b in zip(moved, batches, strict=True))
    assert to_device({"k": [torch.zeros(1)]}, torch.device("cpu"))["k"][0].device.type == "cpu"
