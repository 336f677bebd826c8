"""What the notebooks look at between the stages: ground truth, frame weights, rankings, a teacher's
view of one batch. Each function reads frames from the cache a batch at a time, so memory is
bounded by the batch, not by the test set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .data import Sampling, relevance_table, sample_frame_indices
from .evaluate import TestSet
from .metrics import query_ranks
from .models import CLIP4Clip, Teacher
from .progress import progress

# ------------------------------------------------------------------------------------ ground truth


def ground_truth(data_root: str | Path, sampling: Sampling
                 ) -> tuple[dict[tuple[str, str], np.ndarray], dict[str, np.ndarray]]:
    """The synthetic set's ground truth over the sampled frames (padded to max_frames):
    {(video_id, caption): frame relevance summing to 1} and {video_id: kind of each frame ("scene0",
    "scene1", "noise", ..., "padding")}. Both empty for a data set without relevance.json and
    video_meta.json."""
    root = Path(data_root)
    if not (root / "relevance.json").is_file() or not (root / "video_meta.json").is_file():
        return {}, {}
    seconds, kinds = {}, {}
    for video in json.loads((root / "video_meta.json").read_text()):
        indices = sample_frame_indices(video["n_frames"], video["fps"], sampling, video=video["video_id"])
        seconds[video["video_id"]] = indices // int(video["fps"])
        sampled = [video["seconds"][second] for second in seconds[video["video_id"]]]
        kinds[video["video_id"]] = np.array(sampled + ["padding"] * (sampling.max_frames - len(sampled)))
    relevance = {}
    for row in relevance_table(root).itertuples(index=False):
        hits = np.zeros(sampling.max_frames)
        hits[: len(seconds[row.video_id])] = np.isin(seconds[row.video_id], row.relevant_seconds)
        relevance[(row.video_id, row.caption)] = hits / max(hits.sum(), 1.0)
    return relevance, kinds


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays (NaN when either is constant)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def attention_statistics(weights: np.ndarray, relevance: np.ndarray, kinds: np.ndarray) -> dict[str, float]:
    """How per-frame weights (N, F) relate to the ground truth of N captions' videos.

    pearson_with_ground_truth: mean over captions of the Pearson correlation with the caption's
    relevant frames (padding left out); max_weight: mean of the largest weight; key_scene_mass: mean
    weight on the video's two key scenes; missing_scene_pct: % of videos giving one key scene < 10%.
    """
    valid = kinds != "padding"
    correlations = [pearson(w[v], r[v]) for w, r, v in zip(weights, relevance, valid, strict=True)]
    scene0 = (weights * (kinds == "scene0")).sum(axis=1)
    scene1 = (weights * (kinds == "scene1")).sum(axis=1)
    return {"pearson_with_ground_truth": float(np.nanmean(correlations)),
            "max_weight": float(weights.max(axis=1).mean()),
            "key_scene_mass": float((scene0 + scene1).mean()),
            "missing_scene_pct": float(100 * (np.minimum(scene0, scene1) < 0.1).mean())}


# ----------------------------------------------------------------------------------- frame weights


def read_videos(test: TestSet, video_rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames and mask of test videos `video_rows` (positions in test.video_ids), read from the cache."""
    rows = test.source_rows(video_rows)
    frames = torch.from_numpy(np.array(test.frames[rows])).to(device)
    mask = torch.from_numpy(np.array(test.mask[rows])).to(device)
    return frames, mask


@torch.no_grad()
def afa_weights(model: CLIP4Clip, test: TestSet, batch_size: int, device: torch.device,
                videos: np.ndarray | None = None) -> np.ndarray:
    """AFA's aggregation weights softmax(logits / tau), (V, F), for the test videos `videos`
    (positions in test.video_ids; default all), `batch_size` videos at a time. They depend on the
    video only, never on a caption."""
    if model.afa is None:
        raise ValueError("this student has no AFA block")
    model.eval().to(device)
    videos = np.arange(len(test.video_ids)) if videos is None else np.asarray(videos)
    out = []
    for start in progress(range(0, len(videos), batch_size), desc="AFA weights", unit="batch", leave=False):
        frames, mask = read_videos(test, videos[start:start + batch_size], device)
        _, logits = model.encode_video(frames, mask)
        assert logits is not None  # a student with AFA gives its logits
        out.append(model.afa.aggregation_weights(logits, mask).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, test.mask.shape[1]))


@torch.no_grad()
def teacher_relevance(teacher: Teacher, test: TestSet, batch_size: int, device: torch.device,
                      captions: np.ndarray | None = None) -> np.ndarray:
    """The teacher's frame-text relevance of each test caption with its own video, (N, F), for the
    captions `captions` (default all), `batch_size` captions at a time."""
    teacher.eval().to(device)
    captions = np.arange(len(test.tokens)) if captions is None else np.asarray(captions)
    out = []
    for start in progress(range(0, len(captions), batch_size), desc=f"{teacher.name} relevance", unit="batch",
                          leave=False):
        chunk = captions[start:start + batch_size]
        frames, mask = read_videos(test, test.caption_video[chunk], device)
        text = teacher.encode_text(test.tokens[chunk].to(device))
        out.append(teacher.relevance(text, teacher.encode_video(frames, mask)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, test.mask.shape[1]))


@torch.no_grad()
def teacher_batch(teacher: Teacher, test: TestSet, captions: np.ndarray, device: torch.device
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A teacher's view of one in-batch step: the (B x B) similarity of test captions `captions`
    with their videos (the logits its coarse-grained teaching passes on), and each caption's frame
    relevance over its own video, (B, F) (what the fine-grained teaching passes on)."""
    teacher.eval().to(device)
    captions = np.asarray(captions)
    frames, mask = read_videos(test, test.caption_video[captions], device)
    text = teacher.encode_text(test.tokens[captions].to(device))
    video = teacher.encode_video(frames, mask)
    return teacher.similarity(text, video).cpu().numpy(), teacher.relevance(text, video).cpu().numpy()


# ----------------------------------------------------------------------------------------- rankings


def correct_ranks(sim: np.ndarray, caption_video: np.ndarray) -> np.ndarray:
    """1-based rank of each caption's own video among all test videos (1 is a hit at R@1)."""
    return query_ranks(sim, caption_video) + 1
