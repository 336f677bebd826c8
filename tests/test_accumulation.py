"""Exact gradient accumulation (tclib.accumulation): N micro-batches give the gradients of the whole
batch, contrastive and coarse-grained losses over all its negatives and AFA's fine-grained loss
included, with one process and with two (gloo), where only the last micro-batch all-reduces."""

import contextlib
import dataclasses

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_distributed import GLOBAL_BATCH, WORLD, FixedTeacher, global_batch, gradients, student
from torch.nn.parallel import DistributedDataParallel

from tclib.accumulation import accumulated_backward, micro_batches
from tclib.experiment.training import TrainingInputs
from tclib.teaching import ContrastiveObjective, TeachingObjective

OBJECTIVES = {"teaching": lambda: TeachingObjective(FixedTeacher(), "pear", "ce", use_fine=True),
              "teaching-ce": lambda: TeachingObjective(FixedTeacher(), "ce", "pear", use_fine=True),
              "contrastive": lambda: ContrastiveObjective(beta=0.5)}


def whole_batch_gradients(objective, batch: dict) -> tuple[torch.Tensor, dict]:
    model = student()
    loss, _ = objective(model, batch)
    loss.backward()
    return loss.detach(), gradients(model)


def assert_same_gradients(ours: dict, expected: dict) -> None:
    """Equal to 1e-5 of each gradient's largest entry (float32 sums in another order differ by ~1e-6 of
    it). A gradient that is 0 in exact arithmetic (AFA's last bias: a softmax ignores a shift) is
    rounding alone, held to 1e-7 of the model's largest gradient entry."""
    assert ours.keys() == expected.keys() and len(expected) > 20
    largest = max(grad.abs().max().item() for grad in expected.values())
    for name, grad in expected.items():
        tolerance = max(1e-5 * grad.abs().max().item(), 1e-7 * largest)
        torch.testing.assert_close(ours[name], grad, rtol=0, atol=tolerance, msg=name)


def test_micro_batches_cut_the_batch_and_keep_whole_what_is_not_per_item():
    batch = {"tokens": torch.arange(8)[:, None], "video_index": torch.arange(8), "teacher_rows": ["whole"]}
    parts = micro_batches(batch, 3)
    assert [len(p["tokens"]) for p in parts] == [3, 2, 3]
    torch.testing.assert_close(torch.cat([p["video_index"] for p in parts]), batch["video_index"])
    assert all(p["teacher_rows"] == ["whole"] for p in parts)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("count", [2, 3])
def test_micro_batches_give_the_gradients_of_the_whole_batch(objective, count):
    batch = global_batch()
    expected_loss, expected = whole_batch_gradients(OBJECTIVES[objective](), batch)
    model = student()
    loss, parts = accumulated_backward(model, batch, OBJECTIVES[objective](), count, contextlib.nullcontext)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-7)
    assert_same_gradients(gradients(model), expected)
    assert all(not p.requires_grad for p in parts.values())


def test_micro_batches_are_not_the_earlier_meaning():
    """Each micro-batch with its own negatives (the earlier meaning) gives other gradients: the test
    above could not pass by accident."""
    batch = global_batch()
    _, expected = whole_batch_gradients(OBJECTIVES["teaching"](), batch)
    model = student()
    for chunk in micro_batches(batch, 2):
        (OBJECTIVES["teaching"]()(model, chunk)[0] / 2).backward()
    differs = [n for n, g in expected.items() if not torch.allclose(gradients(model)[n], g, rtol=1e-3, atol=1e-6)]
    assert len(differs) > 10


def test_a_student_trained_with_the_earlier_meaning_is_not_found_done():
    earlier = dict(epochs=1, lr=1e-4, batch_size=8, clip_lr_scale=0.0, weight_decay=0.2, warmup_proportion=0.1,
                   grad_clip=1.0, beta=1.0)
    assert TrainingInputs(**earlier).as_json() == earlier  # one batch at a time: the record of before
    split = TrainingInputs(**earlier, grad_accumulation=2)
    exact = dataclasses.replace(split, exact_accumulation=True)
    assert exact.fingerprint != split.fingerprint


def run_rank(rank: int, init_file: str, out: str, count: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model = DistributedDataParallel(student())
        all_reduces = []

        def counting(state, bucket):
            all_reduces.append(bucket.index())
            return dist.all_reduce(bucket.buffer().div_(WORLD), async_op=True).get_future().then(lambda f: f.value()[0])

        model.register_comm_hook(None, counting)
        rows = slice(rank * GLOBAL_BATCH // WORLD, (rank + 1) * GLOBAL_BATCH // WORLD)
        local = {key: value[rows] for key, value in global_batch().items()}
        loss, _ = accumulated_backward(model, local, OBJECTIVES["teaching"](), count, contextlib.nullcontext)
        torch.save({"loss": loss, "grads": gradients(model.module), "all_reduces": all_reduces}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_with_micro_batches_give_the_gradients_of_one_on_the_whole_batch(tmp_path):
    expected_loss, expected = whole_batch_gradients(OBJECTIVES["teaching"](), global_batch())
    mp.spawn(run_rank, args=(str(tmp_path / "init"), str(tmp_path), 3), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / WORLD, expected_loss, rtol=1e-5, atol=1e-6)
    for r in ranks:
        assert_same_gradients(r["grads"], expected)
        buckets = set(r["all_reduces"])
        assert sorted(r["all_reduces"]) == sorted(buckets)  # every bucket once: 3 micro-batches, one all-reduce
