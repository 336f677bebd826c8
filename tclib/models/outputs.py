"""What the models give the training loop: the student and every teacher return a RetrievalOutput."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RetrievalOutput:
    """In-batch (texts x videos) logits, and AFA's frame logits (B, F) when the model has AFA."""

    logits: torch.Tensor
    afa_logits: torch.Tensor | None = None
