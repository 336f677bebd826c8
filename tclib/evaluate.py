"""Evaluation: features of a test split, the caption x video similarity, metrics and costs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

import numpy as np
import torch

from .data.rows import RowView
from .metrics import dual_softmax, retrieval_metrics, video_to_text_metrics
from .models.student import CLIP4Clip
from .models.teachers import Features, Teacher, select
from .scoring import encode_texts, encode_videos


@dataclass
class TestSet:
    """A test split: tokens of every caption, the position of its video in video_ids, and where the
    videos' frames are. `frames`/`mask` are a frame source (an array or the frame cache's
    view) read a batch at a time; video j is its row rows[j] (all rows in order when rows is None)."""

    tokens: torch.Tensor  # (C, L)
    caption_video: np.ndarray  # (C,) position in video_ids
    frames: np.ndarray | RowView  # (N, F, 3, H, W) uint8, N >= len(video_ids)
    mask: np.ndarray | RowView  # (N, F)
    video_ids: list[str]
    rows: np.ndarray | None = None  # (V,) row of each video in frames; None: row j is video j

    def source_rows(self, videos: np.ndarray | None = None) -> np.ndarray:
        """Rows in `frames` of test videos `videos` (positions in video_ids; default all)."""
        rows = np.arange(len(self.video_ids)) if self.rows is None else np.asarray(self.rows)
        return rows if videos is None else rows[np.asarray(videos)]


@overload
def video_features(model: CLIP4Clip, test: TestSet, batch_size: int, device: torch.device,
                   desc: str = "videos") -> torch.Tensor: ...


@overload
def video_features(model: Teacher, test: TestSet, batch_size: int, device: torch.device,
                   desc: str = "videos") -> Features: ...


@overload
def video_features(model: CLIP4Clip | Teacher, test: TestSet, batch_size: int, device: torch.device,
                   desc: str = "videos") -> torch.Tensor | Features: ...


@torch.no_grad()
def video_features(model: CLIP4Clip | Teacher, test: TestSet, batch_size: int, device: torch.device,
                   desc: str = "videos") -> torch.Tensor | Features:
    """What `model` stores per test video (on the CPU), a batch of frames at a time: a student's
    video vectors (V, D), a teacher's feature dict."""
    model.eval().to(device)
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor | Features]
    if isinstance(model, Teacher):
        encode = model.encode_video
    else:
        student = model
        encode = lambda f, m: student.encode_video(f, m)[0]
    return encode_videos(encode, test.frames, test.mask, batch_size, device, desc=desc, rows=test.source_rows())


@torch.no_grad()
def similarity_matrix(model: CLIP4Clip | Teacher, test: TestSet, batch_size: int, device: torch.device
                      ) -> tuple[np.ndarray, dict[str, float]]:
    """(captions x videos) logits (cosine times the model's logit scale) and costs: floats stored per
    video, seconds to score all pairs. Every metric of the model, dual-softmax included, is read from
    this one matrix: the features are extracted once per model."""
    model.eval().to(device)
    if isinstance(model, Teacher):
        video = video_features(model, test, batch_size, device)
        text = encode_texts(model.encode_text, test.tokens, batch_size, device)
        video = {k: v.to(device) for k, v in video.items()}
        start = time.perf_counter()
        blocks = [model.similarity({k: v.to(device) for k, v in select(text, slice(i, i + batch_size)).items()}, video)
                  for i in range(0, len(test.tokens), batch_size)]
        sim = torch.cat(blocks).cpu()
        stored = sum(v[0].numel() for k, v in video.items() if k != "mask")
    else:
        vectors = video_features(model, test, batch_size, device)
        text = encode_texts(model.encode_text, test.tokens, batch_size, device)
        start = time.perf_counter()
        sim = (model.logit_scale * (text.to(device) @ vectors.to(device).t())).cpu()
        stored = vectors.shape[1]
    seconds = time.perf_counter() - start
    return sim.float().numpy(), {"floats_per_video": float(stored), "score_seconds": seconds}


INFERENCES = ("plain", "dsl")
"""How a similarity matrix is turned into rankings: as it is, or with dual-softmax inference."""


def metrics_of(sim: np.ndarray, costs: dict[str, float], test: TestSet, inference: str = "plain"
               ) -> dict[str, float]:
    """The metrics row of a (captions x videos) similarity matrix of `test`, with its costs.

    Text->video: every caption is a query and its own video the one correct answer. Video->text:
    every video is a query, and a candidate video counts through its best-scoring caption, so a
    video is matched by any of its captions (with one caption or one paragraph per video, as on
    MSR-VTT 1k-A, DiDeMo and ActivityNet, this is the transpose). `inference="dsl"` ranks by
    :func:`tclib.metrics.dual_softmax` of `sim` (softmax over captions for text->video, over videos
    for video->text)."""
    if inference not in INFERENCES:
        raise ValueError(f"unknown inference {inference!r} (expected one of {INFERENCES})")
    dsl = inference == "dsl"
    t2v = retrieval_metrics(dual_softmax(sim, axis=0) if dsl else sim, gt=test.caption_video)
    v2t = video_to_text_metrics(dual_softmax(sim, axis=1) if dsl else sim, test.caption_video)
    row = {f"t2v_{k}": float(v) for k, v in t2v.items()}
    row.update({f"v2t_{k}": float(v) for k, v in v2t.items()})
    row.update(costs)
    return row
