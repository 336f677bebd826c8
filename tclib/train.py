"""One training loop for students and teachers.

AdamW (betas 0.9/0.98, eps 1e-6, weight decay 0.2 except biases; fused on CUDA), the reference
schedule (linear warm-up over `warmup_proportion` of the steps, then 0.5 * (1 + cos(pi * progress))),
the CLIP towers at `lr * clip_lr_scale`, AFA at `lr * afa_lr_scale`, other new layers at `lr`,
gradient clipping at `grad_clip`. A checkpoint is written atomically after each epoch and a run
resumes from it; the finished model is `model.pt` beside it.

On a GPU: batches come from worker processes, pinned and copied a step ahead (tclib.loader); fp32
matrix products use TF32 (`tf32`); `precision: bf16` runs the forward and the losses under bfloat16
autocast; `grad_accumulation: N` gives the whole batch's gradients from N micro-batches
(tclib.accumulation); `grad_checkpointing` and `compile` trade compute for memory and the other way.
Nothing in a step reads back to the host: the losses are read every `log_every` steps, shown on the
progress bar and written, with learning rates, throughput, the share of time spent waiting for data
and the peak GPU memory, to TensorBoard (tclib.monitor).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .accumulation import accumulated_backward
from .distributed import barrier, is_main, world
from .loader import dataset_size, loader_workers, on_device, to_device, training_loader
from .models.checkpoint import read_checkpoint, save_checkpoint
from .monitor import TrainingLog
from .precision import matmul_precision
from .progress import progress

log = logging.getLogger(__name__)

# loss_fn(model, batch) -> (loss, {name: detached tensor}); batch is the collated dict, already on device.
# An objective with a `loss(output, batch, model)` method also trains with exact gradient accumulation,
# and one with `loader_extras` (a callable) has it read more of each batch in the loader.
LossFn = Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, torch.Tensor]]]
ModelT = TypeVar("ModelT", bound=nn.Module)  # train() returns the model it was given


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
    num_workers: int | str = 0  # loader processes; "auto": see tclib.loader.loader_workers
    device: str = "auto"
    precision: str = "fp32"  # "bf16": forward and losses under bfloat16 autocast (weights and optimizer in fp32)
    grad_accumulation: int = 1  # each batch in this many micro-batches, the whole batch's gradients, one step
    tf32: bool = False  # on CUDA: fp32 matrix products on the tensor cores (TF32)
    grad_checkpointing: bool = False  # recompute the CLIP towers' activations in backward
    compile: bool = False  # torch.compile the model
    log_every: int = 10  # steps between read-backs of the losses


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
    """Split parameters by learning rate (CLIP / AFA / new, the group's `name`) and weight decay (none
    for biases).

    A parameter whose learning rate is 0 (clip_lr_scale: 0 freezes the CLIP towers) is frozen:
    requires_grad is switched off, so no gradient is computed for it.
    """
    scales = {"clip": config.clip_lr_scale, "afa": config.afa_lr_scale, "new": 1.0}
    groups: dict[tuple[str, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        kind = next((k for k in ("clip", "afa") if name.startswith(f"{k}.") or f".{k}." in name), "new")
        if scales[kind] == 0:
            param.requires_grad_(False)
        if not param.requires_grad:
            continue
        decay = 0.0 if name.endswith("bias") else config.weight_decay
        groups.setdefault((kind, decay), []).append(param)
    return [{"params": ps, "lr": config.lr * scales[kind], "weight_decay": wd, "name": kind}
            for (kind, wd), ps in groups.items()]


def optimizer_and_schedule(groups: list[dict], config: TrainConfig, total_steps: int, device: torch.device
                           ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over the parameter groups (fused on CUDA) and the warm-up + cosine schedule over `total_steps`."""
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6, fused=device.type == "cuda" or None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, config.warmup_proportion))
    return optimizer, scheduler


def autocast(config: TrainConfig, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """The step's autocast: bfloat16 with precision bf16, none with fp32."""
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")


def training_step(model: nn.Module, batch: dict, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler, config: TrainConfig, device: torch.device
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimizer step on `batch` (on `device`; moved there if not): the losses and their backward
    (the whole batch at once, or in `grad_accumulation` micro-batches with the whole batch's
    gradients), gradient clipping, the AdamW and schedule steps. Returns the loss and its parts,
    detached, on the device: nothing is read back to the host."""
    batch = to_device(batch, device)
    optimizer.zero_grad(set_to_none=True)
    if config.grad_accumulation > 1:
        if not hasattr(loss_fn, "loss"):
            raise TypeError("grad_accumulation > 1 needs an objective with a loss(output, batch, model) method "
                            "(tclib.teaching)")
        loss, parts = accumulated_backward(model, batch, loss_fn, config.grad_accumulation, autocast(config, device))
    else:
        with autocast(config, device)():
            loss, parts = loss_fn(model, batch)
        loss.backward()
        loss = loss.detach()
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
    optimizer.step()
    scheduler.step()
    return loss, parts


class StepMeter:
    """Losses summed on the device, read back every `log_every` steps: means since the last read,
    samples per second and the share of that time spent waiting for batches."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.sums: dict[str, torch.Tensor] = {}
        self.epoch_loss: torch.Tensor | None = None
        self.steps, self.waited, self.since = 0, 0.0, time.perf_counter()

    def add(self, loss: torch.Tensor, parts: dict[str, torch.Tensor], waited: float) -> None:
        for name, value in {"loss": loss, **{f"loss/{k}": v for k, v in parts.items()}}.items():
            self.sums[name] = self.sums[name] + value.float() if name in self.sums else value.float()
        self.epoch_loss = loss.float() if self.epoch_loss is None else self.epoch_loss + loss.float()
        self.steps += 1
        self.waited += waited

    def read(self) -> dict[str, float]:
        """The means since the last read (this is where the host waits for the device), and rates."""
        names = list(self.sums)
        means = torch.stack([self.sums[n] for n in names]).div(self.steps).tolist() if names else []
        elapsed = time.perf_counter() - self.since
        values = dict(zip(names, means, strict=True), samples_per_s=self.steps * self.batch_size / elapsed,
                      data_wait_share=self.waited / elapsed)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            values["gpu_memory_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
        self.sums, self.steps, self.waited, self.since = {}, 0, 0.0, time.perf_counter()
        return values


def timed(batches: Iterator[dict]) -> Iterator[tuple[dict, float]]:
    """Each batch with the seconds spent waiting for it."""
    while True:
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        yield batch, time.perf_counter() - start


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


def prepared(model: nn.Module, config: TrainConfig, device: torch.device) -> nn.Module:
    """What the loop calls: `model` with activation checkpointing as asked, compiled when asked, and
    over several processes in DDP (which averages the gradients; the objectives gather the embeddings)."""
    from .models.backbone import set_grad_checkpointing

    set_grad_checkpointing(model, config.grad_checkpointing)
    trained = cast(nn.Module, torch.compile(model)) if config.compile else model  # a compiled Module is a Module
    if world()[1] == 1:
        return trained
    return nn.parallel.DistributedDataParallel(
        trained, device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None)


def train(model: ModelT, dataset: Dataset, loss_fn: LossFn, config: TrainConfig, out_dir: str | Path,
          desc: str = "train") -> ModelT:
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
    if processes > 1 and (config.batch_size % processes or dataset_size(dataset) < config.batch_size):
        raise ValueError(f"batch_size {config.batch_size} must be a multiple of the {processes} processes and at "
                         f"most the {dataset_size(dataset)} training pairs")
    loader = training_loader(dataset, config.batch_size, loader_workers(config.num_workers, device),
                             generator, pin=device.type == "cuda", extras=getattr(loss_fn, "loader_extras", None))
    groups = param_groups(model, config)
    if not groups:
        log.info("%s: no trainable parameters (everything frozen), saving the model as it is", desc)
        if is_main():
            save_checkpoint(model.state_dict(), final)
        return model
    optimizer, scheduler = optimizer_and_schedule(groups, config, config.epochs * len(loader), device)
    start_epoch, history = resume(last, model, optimizer, scheduler, generator, desc)
    trained = prepared(model, config, device)
    board = TrainingLog(out_dir, enabled=is_main(), start_step=start_epoch * len(loader))
    with board, matmul_precision(config.tf32 and device.type == "cuda"):
        for epoch in range(start_epoch, config.epochs):
            history.append(train_epoch(trained, loader, loss_fn, optimizer, scheduler, config, device, board,
                                       f"{desc} epoch {epoch + 1}/{config.epochs}", epoch * len(loader)))
            if is_main():
                log.info("%s: epoch %d/%d loss %.4f", desc, epoch + 1, config.epochs, history[-1])
                board.write((epoch + 1) * len(loader), {"epoch_loss": history[-1]})
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


def train_epoch(model: nn.Module, loader, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, config: TrainConfig, device: torch.device,
                board: TrainingLog, desc: str, first_step: int) -> float:
    """One epoch over `loader`; returns its mean loss (this process's share of the batch). The losses
    are read back every `log_every` steps and at the end, never in between."""
    model.train()
    bar = progress(total=len(loader), desc=desc, unit="batch", leave=False, disable=not is_main())
    meter = StepMeter(config.batch_size)
    for step, (batch, waited) in enumerate(timed(on_device(iter(loader), device)), 1):
        loss, parts = training_step(model, batch, loss_fn, optimizer, scheduler, config, device)
        meter.add(loss, parts, waited)
        bar.update(1)
        if step % config.log_every == 0 or step == len(loader):
            values = meter.read()
            values.update({f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups})
            bar.set_postfix(**{k.removeprefix("loss/"): f"{v:.4f}" for k, v in values.items() if k.startswith("loss")})
            board.write(first_step + step, values)
    bar.close()
    return meter.epoch_loss.item() / max(1, len(loader)) if meter.epoch_loss is not None else float("nan")
