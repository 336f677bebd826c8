"""Training objectives: plain contrastive (CLIP4Clip, teachers) and TeachCLIP's multi-grained teaching."""

from __future__ import annotations

import torch
from torch import nn

from .losses import coarse_teaching_loss, contrastive_loss, fine_teaching_loss, total_loss
from .scoring import CachedTeacherScores, OnlineTeacherScores


class ContrastiveObjective:
    """Symmetric InfoNCE on the in-batch logits divided by `beta`."""

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = beta

    def __call__(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(batch["tokens"], batch["frames"], batch["frame_mask"])
        return contrastive_loss(out.logits / self.beta), {}


class TeachingObjective:
    """TeachCLIP: contrastive + coarse-grained (logits) + optionally fine-grained (AFA weights) teaching."""

    def __init__(self, scores: CachedTeacherScores | OnlineTeacherScores, coarse_method: str = "pear",
                 fine_method: str = "ce", use_fine: bool = True, weights: dict | None = None,
                 beta: float = 1.0) -> None:
        self.scores = scores
        self.coarse_method = coarse_method
        self.fine_method = fine_method
        self.use_fine = use_fine
        self.weights = weights or None
        self.beta = beta

    def __call__(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(batch["tokens"], batch["frames"], batch["frame_mask"])
        logits = out.logits / self.beta
        teacher_logits, teacher_relevance = self.scores(batch)
        contrastive = contrastive_loss(logits)
        coarse = coarse_teaching_loss(logits, [t / self.beta for t in teacher_logits], method=self.coarse_method)
        fine = None
        if self.use_fine:
            if out.afa_logits is None:
                raise ValueError("fine-grained teaching needs a student with AFA (afa=True)")
            weights = model.afa.frame_weights(out.afa_logits, batch["frame_mask"])
            fine = fine_teaching_loss(weights, teacher_relevance, method=self.fine_method)
        loss = total_loss(contrastive, coarse, fine, self.coarse_method, self.weights)
        parts = {"con": contrastive.item(), "coarse": coarse.item()}
        if fine is not None:
            parts["fine"] = fine.item()
        return loss, parts
