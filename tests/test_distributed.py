"""Training over several processes: two gloo processes, each with half of a global batch, give the
loss and the gradients of one process on the whole batch (in-batch negatives over the global batch,
teachers scoring the global batch, AFA taught on each process's own videos). Processes join with
the backend of the device the run asks for, each on the GPU of its local rank."""

import json
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from tclib.distributed import PROCESS_GROUP_TIMEOUT, backend_for, init_from_environment, local_device
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


def test_the_backend_follows_the_device_asked_not_the_machine(gpus_here):
    gpus_here(2)
    assert [backend_for(d) for d in ("auto", "cuda", "cuda:1", "cpu")] == ["nccl", "nccl", "nccl", "gloo"]
    gpus_here(0)
    assert [backend_for(d) for d in ("auto", "cpu")] == ["gloo", "gloo"]


def test_each_process_takes_the_gpu_of_its_local_rank(gpus_here, monkeypatch):
    gpus_here(2)
    monkeypatch.setenv("RANK", "3")  # the second process of the second machine
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert local_device("cuda") == local_device("auto") == torch.device("cuda", 1)
    assert local_device("cpu") == torch.device("cpu")
    gpus_here(0)
    assert local_device("auto") == torch.device("cpu")


@pytest.fixture
def joined(monkeypatch):
    """Four processes (this one rank 3, local rank 1): the arguments init_from_environment passes to
    init_process_group and torch.cuda.set_device, captured instead of joining."""
    for name, value in {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    calls = {}
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda *args, **kwargs: calls.update(group=(args, kwargs)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.update(gpu=device))
    return calls


def test_init_joins_with_the_backend_of_the_device_and_a_long_timeout(gpus_here, joined):
    gpus_here(2)
    assert init_from_environment("cuda")
    assert joined.pop("group") == (("nccl",), {"timeout": PROCESS_GROUP_TIMEOUT})
    assert joined.pop("gpu") == torch.device("cuda", 1)
    # rank 0 may build and tune a large FAISS index while the others wait: far past NCCL's 10 minutes
    assert PROCESS_GROUP_TIMEOUT >= timedelta(hours=2)
    init_from_environment("cpu")  # CPU processes on a GPU machine: gloo, no GPU taken
    assert joined == {"group": (("gloo",), {"timeout": PROCESS_GROUP_TIMEOUT})}
    init_from_environment()  # "auto": the GPU when there is one
    assert joined["group"][0] == ("nccl",)


def test_the_index_worker_encodes_on_the_gpu_of_its_local_rank(gpus_here, monkeypatch, tmp_path):
    from tclib.search import worker

    gpus_here(2)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    seen = {}
    monkeypatch.setattr(worker, "init_from_environment", lambda device: seen.update(joined=device))
    monkeypatch.setattr(worker, "model_of", lambda args: (None, None))
    monkeypatch.setattr(worker, "index_job", lambda args, spec, P: args.device)
    monkeypatch.setattr(worker, "build_index", lambda job, lock: seen.update(device=job, lock=lock) or "report")
    monkeypatch.setattr(worker, "is_main", lambda: False)
    job = tmp_path / "launch.json"
    sources = dict.fromkeys(("list", "split", "segment_seconds", "segment_stride", "shots", "run", "seed"))
    job.write_text(json.dumps({**sources, "out": str(tmp_path), "videos": "v", "params": "p.yaml", "device": "cuda",
                               "batch_size": 8, "workers": 0, "shard_size": 16, "kind": "exact"}))
    worker.main([str(job)])
    assert seen == {"joined": "cuda", "device": "cuda:1", "lock": False}
