"""Training objectives: plain contrastive (CLIP4Clip, teachers) and TeachCLIP's multi-grained teaching.

An objective is called as `objective(model, batch) -> (loss, parts)`: the model's forward on the
batch, then `objective.loss(output, batch, model)`, the losses of that output. Exact gradient
accumulation (tclib.accumulation) calls the two apart: the losses of a whole batch from outputs
computed micro-batch by micro-batch. The parts (each loss term) are detached tensors, never read
back here: the training loop reads them every few steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .distributed import gather, local_rows, world
from .losses import coarse_teaching_loss, contrastive_loss, fine_teaching_loss, total_loss
from .models.afa import AFA
from .scoring import CachedTeacherScores, OnlineTeacherScores

Parts = dict[str, torch.Tensor]


def global_batch(batch: dict) -> dict:
    """What the teachers score: the caption and video indices, and the teachers' cached rows when the
    loader read them, of every process's part of the batch (the batch itself with one process)."""
    if world()[1] == 1:
        return batch
    device = batch["tokens"].device
    gathered: dict[str, Any] = {key: gather(torch.as_tensor(batch[key]).to(device))
                                for key in ("caption_index", "video_index")}
    if "teacher_rows" in batch:
        gathered["teacher_rows"] = [{side: {key: gather(value) for key, value in features.items()}
                                     for side, features in rows.items()} for rows in batch["teacher_rows"]]
    return gathered


def model_output(model: nn.Module, batch: dict):
    """The model's forward on a batch's tokens, frames and frame mask."""
    return model(batch["tokens"], batch["frames"], batch["frame_mask"])


class ContrastiveObjective:
    """Symmetric InfoNCE on the in-batch logits divided by `beta`."""

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = beta

    def __call__(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, Parts]:
        return self.loss(model_output(model, batch), batch, model)

    def loss(self, out, batch: dict, model: nn.Module) -> tuple[torch.Tensor, Parts]:
        contrastive = contrastive_loss(out.logits / self.beta)
        return contrastive, {"contrastive": contrastive.detach()}


class TeachingObjective:
    """TeachCLIP: contrastive + coarse-grained (logits) + optionally fine-grained (AFA weights) teaching.
    The teachers score in float32 whatever the student's precision (tclib.scoring)."""

    def __init__(self, scores: CachedTeacherScores | OnlineTeacherScores, coarse_method: str = "pear",
                 fine_method: str = "ce", use_fine: bool = True, weights: dict | None = None,
                 beta: float = 1.0) -> None:
        self.scores = scores
        self.coarse_method = coarse_method
        self.fine_method = fine_method
        self.use_fine = use_fine
        self.weights = weights or None
        self.beta = beta

    @property
    def loader_extras(self):
        """What the training loader reads with each batch: the teachers' cached rows (None online)."""
        return self.scores.rows if isinstance(self.scores, CachedTeacherScores) else None

    def __call__(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, Parts]:
        return self.loss(model_output(model, batch), batch, model)

    def loss(self, out, batch: dict, model: nn.Module) -> tuple[torch.Tensor, Parts]:
        logits = out.logits / self.beta  # over the global batch when trained over several processes
        if world()[1] > 1 and not isinstance(self.scores, CachedTeacherScores):
            raise ValueError("training over several processes scores the teachers from their feature cache: "
                             "use teacher_mode: cached")
        teacher_logits, teacher_relevance = self.scores(global_batch(batch))
        parts = {"contrastive": contrastive_loss(logits),
                 "coarse": coarse_teaching_loss(logits, [t / self.beta for t in teacher_logits],
                                                method=self.coarse_method)}
        if self.use_fine:
            parts["fine"] = self.fine_loss(out, batch, model, teacher_relevance)
        loss = total_loss(parts["contrastive"], parts["coarse"], parts.get("fine"), self.coarse_method, self.weights)
        return loss, {name: part.detach() for name, part in parts.items()}

    def fine_loss(self, out, batch: dict, model: nn.Module, teacher_relevance: list[torch.Tensor]) -> torch.Tensor:
        """AFA's frame weights of this process's videos against the teachers' relevance of them."""
        if out.afa_logits is None:
            raise ValueError("fine-grained teaching needs a student with AFA (afa=True)")
        afa = getattr(model, "module", model).afa  # the student inside DDP
        if not isinstance(afa, AFA):
            raise ValueError("fine-grained teaching needs a student with AFA (afa=True)")
        weights = afa.frame_weights(out.afa_logits, batch["frame_mask"])
        return fine_teaching_loss(weights, [local_rows(r) for r in teacher_relevance], method=self.fine_method)
