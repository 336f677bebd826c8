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

import torch
import torch.distributed as dist

__all__ = ["barrier", "gather", "gather_with_grad", "init_from_environment", "is_main", "local_rows", "world"]


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


def init_from_environment() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT):
    NCCL on GPUs (each process on cuda:LOCAL_RANK), gloo on CPUs. False when there is one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True
