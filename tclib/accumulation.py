"""Exact gradient accumulation: the gradients of a whole batch with the activations of a micro-batch.

The contrastive and coarse-grained losses compare every caption of a batch with every video of it,
so splitting a batch into micro-batches with a loss each would change the objective (each would see
its own negatives only). Instead (the GradCache scheme, open_clip's `accum_freq`):

1. every micro-batch's embeddings are computed without gradients (only the outputs are kept);
2. they are joined into the whole batch's output, made leaves of a new graph, and the losses of the
   whole batch (all its negatives; the teachers scoring the whole batch) are computed from them and
   back-propagated: this gives d loss / d output for every micro-batch's outputs;
3. each micro-batch is computed again with gradients and back-propagated from its outputs with
   those gradients (a surrogate Σ output · gradient), which adds its share of the parameters'
   gradients; over several processes only the last micro-batch's backward all-reduces (`no_sync`).

The result equals one backward of the whole batch (tests/test_accumulation.py), at the price of a
second forward of each micro-batch. The model must return a StudentOutput (tclib.models.outputs).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

import torch
from torch import nn

from .models.outputs import StudentOutput
from .teaching import model_output


def micro_batches(batch: dict, count: int) -> list[dict]:
    """`batch` cut into `count` consecutive parts along the batch dimension (itself when count is 1).
    Entries that are not tensors of the batch's length (the teachers' cached rows) stay whole."""
    if count == 1:
        return [batch]
    size = len(batch["tokens"]) if "tokens" in batch else len(next(iter(batch.values())))
    bounds = [round(i * size / count) for i in range(count + 1)]
    return [{key: value[a:b] if torch.is_tensor(value) and len(value) == size else value
             for key, value in batch.items()} for a, b in itertools.pairwise(bounds) if b > a]


def accumulated_backward(model: nn.Module, batch: dict, objective, count: int,
                         autocast: Callable[[], contextlib.AbstractContextManager]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Back-propagate the losses of the whole `batch` through `model` in `count` micro-batches (see the
    module's docstring); returns the loss and its parts, detached."""
    chunks = micro_batches(batch, count)
    with torch.no_grad(), autocast():
        whole = StudentOutput.cat([forward(model, chunk) for chunk in chunks]).leaves()
    with autocast():
        loss, parts = objective.loss(whole, batch, model)
    loss.backward()
    grads = whole.tensors()  # the leaves, their .grad filled (None for an output the losses do not read)
    start = 0
    for k, chunk in enumerate(chunks):
        size = len(chunk["tokens"])
        with _synced(model, last=k == len(chunks) - 1), autocast():
            out = forward(model, chunk)
            surrogate = sum((value.float() * _share(grads[key], start, size, len(chunks))).sum()
                            for key, value in out.tensors().items() if grads[key].grad is not None)
        if not isinstance(surrogate, torch.Tensor):  # sum() of nothing: 0
            raise ValueError("the losses read none of the model's outputs: nothing to back-propagate")
        surrogate.backward()
        start += size
    return loss.detach(), parts


def forward(model: nn.Module, batch: dict) -> StudentOutput:
    """The model's output on `batch`, which must be a student's (its embeddings)."""
    out = model_output(model, batch)
    if not isinstance(out, StudentOutput):
        raise TypeError(f"exact gradient accumulation needs a model that returns a StudentOutput (its "
                        f"embeddings), {type(getattr(model, 'module', model)).__name__} returns {type(out).__name__}")
    return out


def _share(leaf: torch.Tensor, start: int, size: int, count: int) -> torch.Tensor:
    """A micro-batch's part of a leaf's gradient: its rows, or for the logit scale (one scalar that
    every micro-batch computes again) an equal share."""
    grad = leaf.grad
    assert grad is not None  # called for the leaves the losses read only
    if leaf.dim() == 0:
        return grad.float() / count
    return grad[start:start + size].float()


def _synced(model: nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """DDP's no_sync for every micro-batch but the last: gradients are all-reduced once per step."""
    no_sync = getattr(model, "no_sync", None)
    if last or no_sync is None:
        return contextlib.nullcontext()
    return no_sync()
