"""The measurement: the peak bytes of live tensors during a real training step, on any device."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from .estimate import clip_shape


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of live tensor storages while active, and their peak: every storage an operation
    returns is counted once, until Python lets go of it (storages keep their Python object alive as
    long as a tensor uses them). Works on any device; `include` counts tensors made before."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def include(self, tensors: Iterable[torch.Tensor]) -> None:
        for tensor in tensors:
            self._count(tensor.untyped_storage())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and value.device.type != "meta":
                self._count(value.untyped_storage())
        return out

    def _count(self, storage: torch.UntypedStorage) -> None:
        if storage in self._seen:
            return
        self._seen[storage] = size = storage.nbytes()
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._release, size)

    def _release(self, size: int) -> None:
        self.live -= size


def measure_training_peak(step: Callable[[], object], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          batch: dict | None = None) -> int:
    """The peak bytes of live tensors during one call of `step` (a whole training step: forward, losses,
    backward, optimizer step), the model's weights, the optimizer's state and `batch` included. `step`
    runs once before, uncounted, so that the optimizer's state exists throughout, as in every step
    but the first."""
    step()
    counter = LiveBytes()
    held = [*model.parameters(), *model.buffers(), *(v for state in optimizer.state.values()
                                                      for v in state.values() if torch.is_tensor(v))]
    counter.include(held + [v for v in (batch or {}).values() if torch.is_tensor(v)])
    with counter:
        step()
    return counter.peak


def measure_student_step(clip_model: str, videos: int, frames: int, words: int, precision: str = "fp32",
                         grad_checkpointing: bool = False) -> int:
    """The measured peak of a training step of a seqTransf + AFA student of `clip_model` (random weights)
    on the CPU, at `videos` videos of `frames` frames and captions of `words` tokens: the contrastive
    loss under the precision's autocast, backward, gradient clipping, AdamW (its per-tensor kernel)."""
    from ..models import CLIP4Clip, load_clip
    from ..models.backbone import set_grad_checkpointing
    from ..teaching import ContrastiveObjective

    torch.manual_seed(0)
    student = CLIP4Clip(load_clip(clip_model, ""), temporal="seqTransf", afa=True)
    set_grad_checkpointing(student, grad_checkpointing)
    optimizer = torch.optim.AdamW(student.parameters())
    size = clip_shape(clip_model).image_size
    batch = {"tokens": torch.randint(1, 1000, (videos, words)),
             "frame_mask": torch.ones(videos, frames, dtype=torch.long),
             "frames": torch.randint(0, 256, (videos, frames, 3, size, size), dtype=torch.uint8)}

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, _ = ContrastiveObjective()(student, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()

    return measure_training_peak(step, student, optimizer, batch)
