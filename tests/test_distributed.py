"""Training over several processes: two gloo processes, each with half of a global batch, give the
loss and the gradients of one process on the whole batch (in-batch negatives over the global batch,
teachers scoring the global batch, AFA taught on each process's own videos)."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from tclib.models import CLIP4Clip, load_clip
from tclib.scoring import CachedTeacherScores
from tclib.teaching import TeachingObjective

GLOBAL_BATCH, FRAMES, WORLD = 6, 4, 2


class FixedTeacher(CachedTeacherScores):
    """Teacher logits and relevance as fixed functions of the caption and video indices."""

    def __init__(self) -> None:
        pass

    def __call__(self, batch):
        c = torch.as_tensor(batch["caption_index"]).float()
        v = torch.as_tensor(batch["video_index"]).float()
        logits = 5 * torch.sin(1.3 * c[:, None] + 0.7 * v[None, :])
        relevance = torch.softmax(torch.cos(c[:, None] + torch.arange(FRAMES)), dim=1)
        return [logits], [relevance]


def global_batch() -> dict:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(GLOBAL_BATCH, FRAMES, dtype=torch.long)
    mask[1, 3:] = 0  # a padded video
    return {"tokens": torch.randint(1, 400, (GLOBAL_BATCH, 8), generator=g),
            "frames": torch.randint(0, 255, (GLOBAL_BATCH, FRAMES, 3, 32, 32), generator=g, dtype=torch.uint8),
            "frame_mask": mask, "caption_index": torch.arange(GLOBAL_BATCH), "video_index": torch.arange(10, 16)}


def student() -> CLIP4Clip:
    torch.manual_seed(0)
    return CLIP4Clip(load_clip("tclib-tiny"), temporal="seqTransf", afa=True, temporal_layers=1)


def gradients(model) -> dict:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def run_rank(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model = DistributedDataParallel(student())
        rows = slice(rank * GLOBAL_BATCH // WORLD, (rank + 1) * GLOBAL_BATCH // WORLD)
        local = {key: value[rows] for key, value in global_batch().items()}
        loss, _ = TeachingObjective(FixedTeacher(), "pear", "ce", use_fine=True)(model, local)
        loss.backward()  # DDP averages the gradients over the two processes
        torch.save({"loss": loss.detach(), "grads": gradients(model.module)}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_give_the_loss_and_gradients_of_one_on_the_global_batch(tmp_path):
    model = student()
    loss, _ = TeachingObjective(FixedTeacher(), "pear", "ce", use_fine=True)(model, global_batch())
    loss.backward()
    expected = gradients(model)

    mp.spawn(run_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    # each process's loss is the global contrastive + coarse terms plus its own half of the fine
    # term, so their mean is the one-process loss
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / WORLD, loss.detach(), rtol=1e-5, atol=1e-6)
    assert ranks[0]["grads"].keys() == expected.keys() and len(expected) > 20
    for name, grad in expected.items():
        for r in ranks:
            torch.testing.assert_close(r["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
