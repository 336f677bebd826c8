"""Teacher scoring: encode a training set with a teacher once, then score any batch from the cache.

A teacher's features depend on one text or one video at a time, so the expensive towers run once
per caption and per video (`encode_teacher_features`), and a training batch's logits and frame
relevance come from the cached features (`TeacherScores`), which costs a few small matrix products.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
def encode_videos(encode, frames, mask, batch_size: int, device: torch.device, desc: str = "videos",
                  rows: np.ndarray | None = None):
    """Apply `encode(frames, mask)` over uint8 frames (N, F, 3, H, W) (array, memmap or cache view)
    in batches: every row, or only `rows` in their order."""
    rows = np.arange(len(frames)) if rows is None else np.asarray(rows)
    parts = []
    for start in tqdm(range(0, len(rows), batch_size), desc=desc, unit="batch", leave=False):
        chunk = rows[start:start + batch_size]
        batch = torch.from_numpy(np.array(frames[chunk])).to(device)  # copy off the memmap
        batch_mask = torch.from_numpy(np.array(mask[chunk])).to(device)
        parts.append(encode(batch, batch_mask))
    return _concat(parts)


@dataclass
class TeacherFeatures:
    """A teacher's features of a training split: text row i = caption i; video row j = frame-source
    row video_rows[j] (only the videos the split uses are encoded)."""

    text: Features
    video: Features
    video_rows: torch.Tensor


def encode_teacher_features(teacher: Teacher, tokens: torch.Tensor, frames, mask, video_rows, batch_size: int,
                            device: torch.device) -> TeacherFeatures:
    """Text features of every caption and video features of the frame-source rows `video_rows`, on the CPU."""
    teacher.eval().to(device)
    video_rows = torch.as_tensor(np.asarray(video_rows), dtype=torch.long)
    text = encode_texts(teacher.encode_text, tokens, batch_size, device, desc=f"{teacher.name} texts")
    video = encode_videos(teacher.encode_video, frames, mask, batch_size, device, desc=f"{teacher.name} videos",
                          rows=video_rows.numpy())
    return TeacherFeatures(text, video, video_rows)


def save_teacher_features(path: str | Path, features: TeacherFeatures) -> Path:
    return save_checkpoint({"text": features.text, "video": features.video, "video_rows": features.video_rows}, path)


def load_teacher_features(path: str | Path) -> TeacherFeatures:
    state = read_checkpoint(path)
    return TeacherFeatures(state["text"], state["video"], state["video_rows"])


class TeacherScores:
    """In-batch teacher logits and frame relevance, computed from cached features.

    `teachers[k]` scores with `features[k]`; a batch is given by the indices of its captions
    (rows of the text cache) and of their videos (rows of the frame source).
    """

    def __init__(self, teachers: list[Teacher], features: list[TeacherFeatures]) -> None:
        if len(teachers) != len(features):
            raise ValueError(f"{len(teachers)} teachers but {len(features)} feature caches")
        self.teachers = [t.eval() for t in teachers]
        self.features = features
        # frame-source row -> row of the video cache (-1: not encoded)
        self.positions = []
        for f in features:
            position = torch.full((int(f.video_rows.max()) + 1,), -1, dtype=torch.long)
            position[f.video_rows] = torch.arange(len(f.video_rows))
            self.positions.append(position)

    @torch.no_grad()
    def __call__(self, caption_index: torch.Tensor, video_index: torch.Tensor
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, relevance = [], []
        for teacher, features, position in zip(self.teachers, self.features, self.positions):
            video_index = video_index.cpu()
            rows = position[video_index.clamp(max=len(position) - 1)]
            if (video_index >= len(position)).any() or (rows < 0).any():
                raise ValueError(f"{teacher.name}: the batch has videos whose teacher features were not cached")
            device = next(teacher.parameters()).device
            batch_text = _to(select(features.text, caption_index.cpu()), device)
            batch_video = _to(select(features.video, rows), device)
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
