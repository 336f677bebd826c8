"""Teacher scoring: encode a training set with a teacher once, then score any batch from the cache.

A teacher's features depend on one text or one video at a time, so the expensive towers run once
per caption and per video (`encode_teacher_features`), and a training batch's logits and frame
relevance come from the cached features (`TeacherScores`), which costs a few small matrix products.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .models.checkpoint import read_checkpoint, save_checkpoint
from .models.teachers import Features, Teacher, select

log = logging.getLogger(__name__)


@torch.no_grad()
def encode_texts(encode, tokens: torch.Tensor, batch_size: int, device: torch.device, desc: str = "texts"):
    """Apply `encode(tokens)` (a tensor or a dict of tensors) in batches; results on the CPU."""
    parts = []
    for start in tqdm(range(0, len(tokens), batch_size), desc=desc, unit="batch", leave=False):
        parts.append(encode(tokens[start:start + batch_size].to(device)))
    return _concat(parts)


@torch.no_grad()
def encode_videos(encode, frames, mask, batch_size: int, device: torch.device, desc: str = "videos"):
    """Apply `encode(frames, mask)` over uint8 frames (N, F, 3, H, W) (array or memmap) in batches."""
    parts = []
    for start in tqdm(range(0, len(frames), batch_size), desc=desc, unit="batch", leave=False):
        batch = torch.from_numpy(np.array(frames[start:start + batch_size])).to(device)  # copy off the memmap
        batch_mask = torch.from_numpy(np.array(mask[start:start + batch_size])).to(device)
        parts.append(encode(batch, batch_mask))
    return _concat(parts)


def encode_teacher_features(teacher: Teacher, tokens: torch.Tensor, frames, mask, batch_size: int,
                            device: torch.device) -> tuple[Features, Features]:
    """Text and video features of a whole split, on the CPU."""
    teacher.eval().to(device)
    text = encode_texts(teacher.encode_text, tokens, batch_size, device, desc=f"{teacher.name} texts")
    video = encode_videos(teacher.encode_video, frames, mask, batch_size, device, desc=f"{teacher.name} videos")
    return text, video


def save_teacher_features(path: str | Path, text: Features, video: Features) -> Path:
    return save_checkpoint({"text": text, "video": video}, path)


def load_teacher_features(path: str | Path) -> tuple[Features, Features]:
    state = read_checkpoint(path)
    return state["text"], state["video"]


class TeacherScores:
    """In-batch teacher logits and frame relevance, computed from cached features.

    `teachers[k]` scores with `features[k] = (text, video)`; a batch is given by the indices of
    its captions (rows of the text cache) and of their videos (rows of the video cache).
    """

    def __init__(self, teachers: list[Teacher], features: list[tuple[Features, Features]]) -> None:
        if len(teachers) != len(features):
            raise ValueError(f"{len(teachers)} teachers but {len(features)} feature caches")
        self.teachers = [t.eval() for t in teachers]
        self.features = features

    @torch.no_grad()
    def __call__(self, caption_index: torch.Tensor, video_index: torch.Tensor
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, relevance = [], []
        for teacher, (text, video) in zip(self.teachers, self.features):
            device = next(teacher.parameters()).device
            batch_text = _to(select(text, caption_index.cpu()), device)
            batch_video = _to(select(video, video_index.cpu()), device)
            logits.append(teacher.similarity(batch_text, batch_video))
            relevance.append(teacher.relevance(batch_text, batch_video))
        return logits, relevance


def _to(features: Features, device: torch.device) -> Features:
    return {k: v.to(device) for k, v in features.items()}


def _concat(parts: list):
    """Concatenate batches of tensors, or of dicts of tensors, on the CPU."""
    if torch.is_tensor(parts[0]):
        return torch.cat([p.cpu() for p in parts])
    return {k: torch.cat([p[k].cpu() for p in parts]) for k in parts[0]}
