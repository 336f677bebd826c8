"""Retrieval metrics: recall at k, median and mean rank.

For a query row of a similarity matrix, the rank of its correct item is the number of
items that score strictly higher than it (0-based). Then

    R@k = 100 * mean(rank < k)      (percent)
    MdR = median(rank) + 1          (1-based; the mean of the two middle ranks when even)
    MnR = mean(rank) + 1
    SumR = R@1 + R@5 + R@10         (one direction's sum, as retrieval papers sum them)

This is the CLIP4Clip ``compute_metrics`` convention that TeachCLIP reports. Ties: the
reference sorts each row and looks the correct item's score up by value, so a correct
item tied with ``t`` others yields the ranks r, r+1, ..., r+t (one entry per tied
position). Without ties both agree exactly; with ties our single rank is the smallest of
those, i.e. ties are counted in the query's favour (optimistic tie handling).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "METRIC_KEYS",
    "dual_softmax",
    "query_ranks",
    "retrieval_metrics",
    "video_to_text_metrics",
]

METRIC_KEYS = ("R1", "R5", "R10", "R50", "MdR", "MnR", "SumR")
"""Keys of the dict returned by :func:`retrieval_metrics`."""

ArrayLike = np.ndarray | torch.Tensor | Sequence


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_sim(sim: ArrayLike, name: str = "sim") -> np.ndarray:
    s = _to_numpy(sim)
    if s.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (queries x items) matrix, got shape {s.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {s.shape})")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {s.dtype}")
    if np.isnan(s).any():
        raise ValueError(f"{name} contains NaN; ranks would be meaningless")
    return s


def _as_index(idx: ArrayLike, length: int, upper: int, name: str, what: str) -> np.ndarray:
    """Validate an integer index vector of ``length`` entries in [0, upper)."""
    a = _to_numpy(idx)
    if a.ndim != 1 or a.shape[0] != length:
        raise ValueError(f"{name} must be a 1-D array of {length} {what}, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got dtype {a.dtype}")
    bad = np.flatnonzero((a < 0) | (a >= upper))
    if bad.size:
        raise ValueError(
            f"{name}[{bad[0]}] = {a[bad[0]]} is out of range: indices must lie in [0, {upper})"
        )
    return a.astype(np.int64)


def query_ranks(sim: ArrayLike, gt: ArrayLike | None = None) -> np.ndarray:
    """0-based rank of each query's correct item: how many items score strictly higher.

    ``sim`` is (queries x items); ``gt[i]`` is the column of query ``i``'s correct item,
    by default ``i`` (then ``sim`` must be square).
    """
    s = _as_sim(sim)
    n_queries, n_items = s.shape
    if gt is None:
        if n_queries != n_items:
            raise ValueError(
                f"sim has shape {s.shape}: without gt the correct items are on the diagonal, "
                f"so sim must be square; pass gt for a non-square matrix"
            )
        g = np.arange(n_queries)
    else:
        g = _as_index(gt, n_queries, n_items, "gt", "item indices (one per query row)")
    correct = s[np.arange(n_queries), g][:, None]
    return (s > correct).sum(axis=1)


def retrieval_metrics(sim: ArrayLike, gt: ArrayLike | None = None) -> dict[str, float]:
    """R@1/5/10/50 (percent), MdR, MnR and SumR of a similarity matrix.

    ``sim`` (queries x items) is a numpy array or torch tensor, higher = more similar;
    ``gt[i]`` is the index of query ``i``'s correct item, by default the diagonal: text-to-video
    metrics are those of a (captions x videos) matrix with ``gt`` each caption's video. With several
    captions per video the reference ranks by a double argsort, which breaks ties by sort order, and
    takes ``torch.median`` (the lower middle value for an even count); here ties are optimistic and
    MdR is the usual median, so the two can differ on ties or by half a rank in MdR. See the module
    docstring for the rank convention.
    """
    ranks = query_ranks(sim, gt)
    out = {f"R{k}": float(100.0 * np.mean(ranks < k)) for k in (1, 5, 10, 50)}
    out["MdR"] = float(np.median(ranks) + 1)
    out["MnR"] = float(np.mean(ranks) + 1)
    out["SumR"] = out["R1"] + out["R5"] + out["R10"]
    return out


def _video_to_text_sim(sim: np.ndarray, caption_video: np.ndarray) -> np.ndarray:
    """S_v2t[v, u] = max over captions c of video u of sim[c, v] (videos x videos)."""
    n_videos = sim.shape[1]
    counts = np.bincount(caption_video, minlength=n_videos)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        shown = ", ".join(str(v) for v in missing[:10]) + (" ..." if missing.size > 10 else "")
        raise ValueError(
            f"{missing.size} video(s) have no caption in caption_video (e.g. {shown}); "
            f"video-to-text retrieval needs at least one caption per video"
        )
    s_v2t = np.full((n_videos, n_videos), -np.inf, dtype=np.result_type(sim.dtype, np.float32))
    # For every caption c (of video u = caption_video[c]), fold column c of sim.T into
    # column u of S_v2t with a running maximum.
    np.maximum.at(s_v2t.T, caption_video, sim)
    return s_v2t


def video_to_text_metrics(sim: ArrayLike, caption_video: ArrayLike) -> dict[str, float]:
    """Video-to-text metrics: each video queries the captions.

    ``sim`` is (captions x videos); ``caption_video[i]`` is the index of caption ``i``'s
    video. As in the reference, a candidate video ``u`` is scored for query video ``v``
    by its best caption, S_v2t[v, u] = max_{c of u} sim[c, v], and the metrics are those
    of S_v2t with the diagonal as ground truth. With one caption per video S_v2t is
    ``sim.T`` with its columns reordered by video.
    """
    s = _as_sim(sim)
    cv = _as_index(
        caption_video, s.shape[0], s.shape[1], "caption_video", "video indices (one per caption)"
    )
    return retrieval_metrics(_video_to_text_sim(s, cv))


def dual_softmax(sim: ArrayLike, axis: int) -> np.ndarray:
    """Dual-softmax inference (DSL): ``sim * softmax(sim, axis)``.

    ``sim`` holds logits (cosine times the model's logit scale, as the models here score pairs).
    Each score is weighted by how strongly its item is claimed by this query against every other
    query: for text->video on a (captions x videos) matrix the softmax runs over the captions
    (``axis=0``), for video->text over the videos (``axis=1``). The prior is taken over the whole
    test set at once, so a query's ranking depends on the other queries; results with it are
    therefore always labelled, and compared only with published numbers that used it too.
    """
    s = _as_sim(sim)
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    weighted = s - s.max(axis=axis, keepdims=True)  # one array the size of sim, worked in place
    np.exp(weighted, out=weighted)
    weighted /= weighted.sum(axis=axis, keepdims=True)
    weighted *= s
    return weighted
