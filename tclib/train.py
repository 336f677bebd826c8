"""One training loop for students and teachers.

AdamW (betas 0.9/0.98, eps 1e-6, weight decay 0.2 except biases), the reference schedule
(linear warm-up over `warmup_proportion` of the steps, then 0.5 * (1 + cos(pi * progress))),
the CLIP towers at `lr * clip_lr_scale`, AFA at `lr * afa_lr_scale`, other new layers at `lr`,
gradient clipping at `grad_clip`. A checkpoint is written atomically after each epoch and a run
resumes from it; the finished model is `model.pt` beside it.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from .data.dataset import BatchReads
from .distributed import barrier, is_main, world
from .models.checkpoint import read_checkpoint, save_checkpoint
from .progress import progress

log = logging.getLogger(__name__)

# loss_fn(model, batch) -> (loss, {name: value}) ; batch is the collated dict, already on device.
LossFn = Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    clip_lr_scale: float = 1e-3
    afa_lr_scale: float = 10.0
    weight_decay: float = 0.2
    warmup_proportion: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    precision: str = "fp32"  # "bf16": forward and losses under bfloat16 autocast (weights and optimizer in fp32)
    grad_accumulation: int = 1  # each batch in this many micro-batches (their own in-batch negatives), one step


def micro_batches(batch: dict, count: int) -> list[dict]:
    """`batch` cut into `count` consecutive parts along the batch dimension (itself when count is 1)."""
    if count == 1:
        return [batch]
    size = len(next(iter(batch.values())))
    bounds = [round(i * size / count) for i in range(count + 1)]
    return [{key: value[a:b] for key, value in batch.items()} for a, b in zip(bounds, bounds[1:]) if b > a]


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" picks the first GPU when one is present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def warmup_cosine(step: int, total: int, warmup_proportion: float) -> float:
    """The reference learning-rate multiplier at `step` of `total`."""
    progress = step / max(1, total)
    if progress < warmup_proportion:
        return progress / warmup_proportion
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Split parameters by learning rate (CLIP / AFA / new) and weight decay (none for biases).

    A parameter whose learning rate is 0 (clip_lr_scale: 0 freezes the CLIP towers) is frozen:
    requires_grad is switched off, so no gradient is computed for it.
    """
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if name.startswith("clip.") or ".clip." in name:
            lr = config.lr * config.clip_lr_scale
        elif name.startswith("afa.") or ".afa." in name:
            lr = config.lr * config.afa_lr_scale
        else:
            lr = config.lr
        if lr == 0:
            param.requires_grad_(False)
        if not param.requires_grad:
            continue
        decay = 0.0 if name.endswith("bias") else config.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def training_loader(dataset: Dataset, config: TrainConfig, generator: torch.Generator,
                    device: torch.device) -> DataLoader:
    """Shuffled batches of `dataset` in the order `generator` gives. A dataset over a frame cache
    (`reads_batches`) is read a whole batch at a time (one read per video into the batch's array);
    others item by item. Both give the same batches for the same generator state."""
    pin = device.type == "cuda"
    _, processes = world()
    # over several processes every one draws the same global batches and reads its own slice of each
    batches = BatchSampler(RandomSampler(dataset, generator=generator), config.batch_size,
                           drop_last=processes > 1 or len(dataset) > config.batch_size)
    if processes > 1:
        batches = RankSlices(batches)
    if getattr(dataset, "reads_batches", False):
        return DataLoader(BatchReads(dataset), batch_size=None, sampler=batches, num_workers=config.num_workers,
                          generator=generator, pin_memory=pin)
    return DataLoader(dataset, batch_sampler=batches, num_workers=config.num_workers, generator=generator,
                      pin_memory=pin)


class RankSlices:
    """This process's contiguous slice of each global batch (rank r: items r*b .. r*b+b-1), so that
    the gathered embeddings come back in the global batch's order."""

    def __init__(self, batches: BatchSampler) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        rank, processes = world()
        for batch in self.batches:
            size = len(batch) // processes
            yield batch[rank * size:(rank + 1) * size]


def optimizer_and_schedule(groups: list[dict], config: TrainConfig, total_steps: int
                           ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over the parameter groups and the warm-up + cosine schedule over `total_steps`."""
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, config.warmup_proportion))
    return optimizer, scheduler


def training_step(model: nn.Module, batch: dict, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler, config: TrainConfig, device: torch.device
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """One optimizer step on `batch` (a collated batch, moved to `device` here): its micro-batches
    under autocast (bf16) with their losses' backward, gradient clipping, the AdamW and schedule
    steps. Returns the batch's mean loss (detached) and the last micro-batch's loss parts."""
    optimizer.zero_grad(set_to_none=True)
    loss = 0.0
    for chunk in micro_batches(batch, config.grad_accumulation):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            part, parts = loss_fn(model, to_device(chunk, device))
        (part / config.grad_accumulation).backward()
        loss += part.detach() / config.grad_accumulation
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    scheduler.step()
    return loss, parts


def resume(last: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator, desc: str
           ) -> tuple[int, list[float]]:
    """The epoch to start from and the loss history: 0 and none, or the state of the last epoch's
    checkpoint (`last`) restored into the model, optimizer, schedule and random generators."""
    if not last.is_file():
        return 0, []
    state = read_checkpoint(last)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    log.info("%s: resuming after epoch %d from %s", desc, state["epoch"] + 1, last)
    return state["epoch"] + 1, state.get("history", [])


def train(model: nn.Module, dataset: Dataset, loss_fn: LossFn, config: TrainConfig, out_dir: str | Path,
          desc: str = "train") -> nn.Module:
    """Train `model` on `dataset`; checkpoints in `out_dir`; returns the trained model (on its device).

    When `out_dir/model.pt` exists the run is finished and the weights are loaded instead.
    """
    out_dir = Path(out_dir)
    final, last = out_dir / "model.pt", out_dir / "last.pt"
    device = resolve_device(config.device)
    model.to(device)
    if final.is_file():
        model.load_state_dict(read_checkpoint(final))
        log.info("%s: finished earlier, loaded %s", desc, final)
        return model

    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    _, processes = world()
    if processes > 1 and (config.batch_size % processes or len(dataset) < config.batch_size):
        raise ValueError(f"batch_size {config.batch_size} must be a multiple of the {processes} processes and at "
                         f"most the {len(dataset)} training pairs")
    loader = training_loader(dataset, config, generator, device)
    total_steps = config.epochs * len(loader)
    groups = param_groups(model, config)
    if not groups:
        log.info("%s: no trainable parameters (everything frozen), saving the model as it is", desc)
        if is_main():
            save_checkpoint(model.state_dict(), final)
        return model
    optimizer, scheduler = optimizer_and_schedule(groups, config, total_steps)

    start_epoch, history = resume(last, model, optimizer, scheduler, generator, desc)
    # over several processes: DDP averages the gradients (the objectives gather the embeddings)
    trained = model if processes == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None)
    for epoch in range(start_epoch, config.epochs):
        trained.train()
        bar = progress(loader, desc=f"{desc} epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                       disable=not is_main())
        running = 0.0
        for step, batch in enumerate(bar, 1):
            loss, parts = training_step(trained, batch, loss_fn, optimizer, scheduler, config, device)
            running += loss.item()
            bar.set_postfix(loss=f"{running / step:.4f}", **{k: f"{v:.3f}" for k, v in parts.items()})
        epoch_loss = running / max(1, len(loader))  # this process's share of the batch
        history.append(epoch_loss)
        if is_main():
            log.info("%s: epoch %d/%d loss %.4f", desc, epoch + 1, config.epochs, epoch_loss)
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                             "torch_rng": torch.get_rng_state(), "epoch": epoch, "history": history}, last)
        barrier()
    if is_main():
        (out_dir / "history.json").write_text(json.dumps({"epoch_loss": history}))
        save_checkpoint(model.state_dict(), final)
        last.unlink(missing_ok=True)
    barrier()
    return model
