"""The teacher interface: what TeachCLIP needs from a heavy text-video model.

A teacher encodes texts and videos into features of its own (a dict of tensors, first dim =
batch), and from any texts x videos features gives
- `similarity`: the (texts x videos) logit matrix, for coarse-grained teaching;
- `relevance`: for each positive pair (text i, video i), a distribution over video i's frames,
  for fine-grained teaching.
Splitting encoding from scoring lets `tclib.scoring` cache the features of a whole training set
once and score any batch from the cache. A new teacher is a new subclass registered in
`tclib.models.teachers.TEACHERS`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from ..outputs import RetrievalOutput

Features = dict[str, torch.Tensor]


class Teacher(nn.Module, ABC):
    """Base class of every teacher (X-CLIP, ...)."""

    name: ClassVar[str]

    @abstractmethod
    def encode_text(self, tokens: torch.Tensor) -> Features:
        """Tokens (T, L) -> text features, each tensor with first dim T."""

    @abstractmethod
    def encode_video(self, frames: torch.Tensor, mask: torch.Tensor) -> Features:
        """Frames (V, F, 3, H, W) and mask (V, F) -> video features, each tensor with first dim V."""

    @abstractmethod
    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        """(T x V) logits between every text and every video."""

    @abstractmethod
    def relevance(self, text: Features, video: Features) -> torch.Tensor:
        """(B, F) frame-text relevance of each positive pair (text i, video i); rows sum to 1."""

    @classmethod
    def options(cls) -> dict[str, object]:
        """The constructor's options beyond the common keywords, with their defaults (params: teacher_options)."""
        common = {"self", "clip", "max_words", "max_frames", "temporal_layers", "mask_padding"}
        return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if name not in common and p.default is not inspect.Parameter.empty}

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename the keys of a released checkpoint to this class's names (default: as they are)."""
        return state

    def forward(self, tokens: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor) -> RetrievalOutput:
        """In-batch logits, so a teacher trains in the same loop as a student."""
        return RetrievalOutput(self.similarity(self.encode_text(tokens), self.encode_video(frames, mask)))


def select(features: Features, index: torch.Tensor | slice) -> Features:
    """Rows `index` of every tensor in a feature dict."""
    return {key: value[index] for key, value in features.items()}
