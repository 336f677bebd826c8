"""Pictures: AFA attention against teacher relevance and ground truth, per sample video."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402


def attention_figure(videos: list[dict], path: str | Path) -> Path:
    """One panel per video: its frame thumbnails over a heatmap of per-frame weights.

    Each entry of `videos`: `frames` uint8 (F, 3, H, W), `mask` (F,), `caption` str, and `rows`,
    an ordered {label: weights (F,)} (AFA weights, teacher relevance, ground truth, ...).
    """
    path = Path(path)
    n_rows = len(next(iter(videos))["rows"]) if videos else 1
    fig = plt.figure(figsize=(12, (1.4 + 0.35 * n_rows) * max(1, len(videos)) + 0.5))
    outer = fig.add_gridspec(max(1, len(videos)), 1, hspace=0.55)
    for panel, video in enumerate(videos):
        valid = int(np.asarray(video["mask"]).sum())
        grid = outer[panel].subgridspec(2, 1, height_ratios=[1.0, 0.3 * n_rows], hspace=0.05)
        ax_frames = fig.add_subplot(grid[0])
        strip = np.concatenate([f.transpose(1, 2, 0) for f in video["frames"][:valid]], axis=1)
        ax_frames.imshow(strip, aspect="auto", extent=(0, valid, 1, 0))  # one unit per frame, as the heatmap
        ax_frames.set_axis_off()
        ax_frames.set_title("\n".join(textwrap.wrap(f"“{video['caption']}”", 120)), fontsize=9, loc="left")
        ax_heat = fig.add_subplot(grid[1])
        matrix = np.stack([np.asarray(w, dtype=float)[:valid] for w in video["rows"].values()])
        sns.heatmap(matrix, ax=ax_heat, cmap="viridis", vmin=0.0, cbar=False, annot=valid <= 16,
                    fmt=".2f", annot_kws={"fontsize": 6}, yticklabels=list(video["rows"]), xticklabels=True)
        ax_heat.tick_params(axis="y", labelsize=7, rotation=0)
        ax_heat.tick_params(axis="x", labelsize=7)
        ax_heat.set_xlabel("frame" if panel == len(videos) - 1 else "")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays (NaN when either is constant)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")
