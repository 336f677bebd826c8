"""Evaluation: features of a test split, the caption x video similarity, metrics and costs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .metrics import retrieval_metrics, video_to_text_metrics
from .models.student import CLIP4Clip
from .models.teachers import Teacher, select
from .scoring import encode_texts, encode_videos


@dataclass
class TestSet:
    """A test split: tokens of every caption, the row of its video, and the videos' frames."""

    tokens: torch.Tensor  # (C, L)
    caption_video: np.ndarray  # (C,) index into frames
    frames: np.ndarray  # (V, F, 3, H, W) uint8 (may be a memmap)
    mask: np.ndarray  # (V, F)
    video_ids: list[str]


@torch.no_grad()
def similarity_matrix(model: CLIP4Clip | Teacher, test: TestSet, batch_size: int, device: torch.device
                      ) -> tuple[np.ndarray, dict[str, float]]:
    """(captions x videos) similarities and costs: floats stored per video, seconds to score all pairs."""
    model.eval().to(device)
    if isinstance(model, Teacher):
        text = encode_texts(model.encode_text, test.tokens, batch_size, device)
        video = encode_videos(model.encode_video, test.frames, test.mask, batch_size, device)
        video = {k: v.to(device) for k, v in video.items()}
        start = time.perf_counter()
        blocks = [model.similarity({k: v.to(device) for k, v in select(text, slice(i, i + batch_size)).items()}, video)
                  for i in range(0, len(test.tokens), batch_size)]
        sim = torch.cat(blocks).cpu()
        stored = sum(v[0].numel() for k, v in video.items() if k != "mask")
    else:
        text = encode_texts(model.encode_text, test.tokens, batch_size, device)
        video = encode_videos(lambda f, m: model.encode_video(f, m)[0], test.frames, test.mask, batch_size, device)
        start = time.perf_counter()
        sim = (text.to(device) @ video.to(device).t()).cpu()
        stored = video.shape[1]
    seconds = time.perf_counter() - start
    return sim.float().numpy(), {"floats_per_video": float(stored), "score_seconds": seconds}


def evaluate(model: CLIP4Clip | Teacher, test: TestSet, batch_size: int, device: torch.device) -> dict[str, float]:
    """Text->video and video->text metrics (keys t2v_R1, ..., v2t_MnR) and the costs."""
    sim, costs = similarity_matrix(model, test, batch_size, device)
    t2v = retrieval_metrics(sim, gt=test.caption_video)
    v2t = video_to_text_metrics(sim, test.caption_video)
    row = {f"t2v_{k}": float(v) for k, v in t2v.items()}
    row.update({f"v2t_{k}": float(v) for k, v in v2t.items()})
    row.update(costs)
    return row


@torch.no_grad()
def afa_weights(model: CLIP4Clip, frames: torch.Tensor, mask: torch.Tensor, device: torch.device) -> np.ndarray:
    """AFA's aggregation weights softmax(logits / tau) for a few videos, (B, F)."""
    if model.afa is None:
        raise ValueError("this student has no AFA block")
    model.eval().to(device)
    frames, mask = torch.as_tensor(frames).to(device), torch.as_tensor(mask).to(device)
    _, logits = model.encode_video(frames, mask)
    return model.afa.aggregation_weights(logits, mask).cpu().numpy()
