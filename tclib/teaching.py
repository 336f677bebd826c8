"""Training objectives: plain contrastive (CLIP4Clip, teachers) and TeachCLIP's multi-grained teaching."""

from __future__ import annotations

import torch
from torch import nn

from .distributed import gather, local_rows, world
from .losses import coarse_teaching_loss, contrastive_loss, fine_teaching_loss, total_loss
from .scoring import CachedTeacherScores, OnlineTeacherScores


def global_batch(batch: dict) -> dict:
    """What the teachers score: the caption and video indices of every process's part of the batch
    (the batch itself with one process)."""
    if world()[1] == 1:
        return batch
    return {key: gather(torch.as_tensor(batch[key]).to(batch["tokens"].device))
            for key in ("caption_index", "video_index")}


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
        logits = out.logits / self.beta  # over the global batch when trained over several processes
        if world()[1] > 1 and not isinstance(self.scores, CachedTeacherScores):
            raise ValueError("training over several processes scores the teachers from their feature cache: "
                             "use teacher_mode: cached")
        teacher_logits, teacher_relevance = self.scores(global_batch(batch))
        teacher_relevance = [local_rows(r) for r in teacher_relevance]  # AFA sees this process's videos
        contrastive = contrastive_loss(logits)
        coarse = coarse_teaching_loss(logits, [t / self.beta for t in teacher_logits], method=self.coarse_method)
        fine = None
        if self.use_fine:
            if out.afa_logits is None:
                raise ValueError("fine-grained teaching needs a student with AFA (afa=True)")
            weights = getattr(model, "module", model).afa.frame_weights(out.afa_logits, batch["frame_mask"])
            fine = fine_teaching_loss(weights, teacher_relevance, method=self.fine_method)
        loss = total_loss(contrastive, coarse, fine, self.coarse_method, self.weights)
        parts = {"con": contrastive.item(), "coarse": coarse.item()}
        if fine is not None:
            parts["fine"] = fine.item()
        return loss, parts
