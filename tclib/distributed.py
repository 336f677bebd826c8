"""Training over several processes (`torchrun`, one per GPU), as the reference trains on 2-8 GPUs.

Each process holds a slice of the global batch. The student's text and video embeddings are
gathered from every process before the in-batch similarities, so the contrastive and coarse
teaching losses see the global batch's negatives, and the teachers score the global batch; the
gather passes gradients back to the process that computed each embedding (summed over
processes), so that after DDP's averaging the gradients equal one process's on the global batch
(tests/test_distributed.py). With one process every function here is the identity.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["PROCESS_GROUP_TIMEOUT", "backend_for", "barrier", "gather", "gather_with_grad", "init_from_environment",
           "is_cuda", "is_main", "local_device", "local_rows", "world"]


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in the process that writes checkpoints and logs (rank 0)."""
    return world()[0] == 0


def barrier() -> None:
    """Wait for every process (nothing with one process)."""
    if world()[1] > 1:
        dist.barrier()


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's `tensor` concatenated along dim 0 in rank order; gradients flow back to
    each process's own part (summed over the processes that used it)."""
    if world()[1] == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


@torch.no_grad()
def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's `tensor` concatenated along dim 0 in rank order (no gradient)."""
    _, size = world()
    if size == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def local_rows(tensor: torch.Tensor) -> torch.Tensor:
    """This process's rows of a tensor over the global batch (every process holds as many)."""
    rank, size = world()
    if size == 1:
        return tensor
    rows = tensor.shape[0] // size
    return tensor[rank * rows:(rank + 1) * rows]


# NCCL gives up on a collective after 10 minutes by default. In `tclib index --gpus N` rank 0 builds
# and tunes the FAISS index of the whole collection (hours for a large one) while the other ranks
# wait for it at a barrier, so the process group waits this long instead.
PROCESS_GROUP_TIMEOUT = timedelta(hours=6)


def is_cuda(device: str) -> bool:
    """Whether `device` ("auto", "cpu", "cuda", "cuda:1", ...) resolves to a GPU: "auto" when one is present."""
    if device == "auto":
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def backend_for(device: str) -> str:
    """The process group's backend for processes on `device`: NCCL on GPUs, gloo otherwise."""
    return "nccl" if is_cuda(device) else "gloo"


def local_device(device: str = "auto") -> torch.device:
    """This process's device: on a GPU without an index ("auto" with a GPU present, "cuda") the GPU of
    its local rank, cuda:LOCAL_RANK (the global rank counts the GPUs of every machine); a device with
    an index as given (the pre-flight refuses one for several processes); else the CPU device asked."""
    if not is_cuda(device):
        return torch.device("cpu" if device == "auto" else device)
    chosen = torch.device("cuda" if device == "auto" else device)
    return chosen if chosen.index is not None else torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def init_from_environment(device: str = "auto") -> bool:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT)
    for processes on `device`: NCCL when it resolves to a GPU, each process on `local_device(device)`,
    gloo otherwise; collectives wait up to PROCESS_GROUP_TIMEOUT. False when there is one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        if is_cuda(device):
            torch.cuda.set_device(local_device(device))
        dist.init_process_group(backend_for(device), timeout=PROCESS_GROUP_TIMEOUT)
    return True
