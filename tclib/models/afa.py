"""Attentional frame-Feature Aggregation (AFA): TeachCLIP's learned replacement for mean pooling.

AFA scores each frame from its own feature only (no text), so a video is still ONE vector that
is computed once, offline:

    logits = fc2(relu(fc1(frames)))                         (B, F)
    video  = normalize(sum_f softmax(logits / tau)_f * normalize(frame_f))

Padded frame slots: the reference applies both softmaxes to every slot, padding included (a
padded slot is an all-zero image in normalized space, whose feature still gets a weight). That is
the default here too (`mask_padding=False`), so a student trained with the reference code gives
the same video vectors; `mask_padding=True` gives padded slots zero weight instead. With MSR-VTT
(every video >= 10 s, 12 frames at 1 fps) no slot is padded and the two agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# A finite "minus infinity": exp() of it underflows to exactly 0, and log-softmax stays finite.
MASKED_LOGIT = -1e4


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / temperature) over the last dim, giving zero weight where mask == 0."""
    scaled = logits / temperature
    if mask is not None:
        scaled = scaled.masked_fill(mask == 0, MASKED_LOGIT)
    return scaled.softmax(dim=-1)


class AFA(nn.Module):
    """Attentional frame-Feature Aggregation; see the module docstring."""

    def __init__(self, dim: int, temperature: float = 0.1, mask_padding: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, 1)
        self.temperature = temperature
        self.mask_padding = mask_padding

    def forward(self, frame_features: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, D) frames and optional (B, F) mask -> (video (B, D), logits (B, F))."""
        if frame_features.dim() != 3:
            raise ValueError(f"AFA expects frame features of shape (B, F, D), got {tuple(frame_features.shape)}")
        if mask is not None and mask.shape != frame_features.shape[:2]:
            raise ValueError(f"AFA mask shape {tuple(mask.shape)} does not match frames "
                             f"{tuple(frame_features.shape[:2])}")
        logits = self.fc2(F.relu(self.fc1(frame_features))).squeeze(-1)
        weights = self.aggregation_weights(logits, mask)
        frames = F.normalize(frame_features, dim=-1)
        video = F.normalize((weights.unsqueeze(-1) * frames).sum(dim=1), dim=-1)
        return video, logits

    def aggregation_weights(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The weights that aggregate the frames: softmax(logits / temperature)."""
        return masked_softmax(logits, mask if self.mask_padding else None, self.temperature)

    def frame_weights(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The weights that fine-grained teaching supervises: softmax(logits) at temperature 1."""
        return masked_softmax(logits, mask if self.mask_padding else None, 1.0)
