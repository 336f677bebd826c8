"""Figures of the notebooks. Each function returns a matplotlib Figure and never chooses a backend or
touches pyplot's global state: a notebook shows the Figure inline, a script saves it
(`figure.savefig(path)`)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["Figure", "attention_figure", "framed_strip", "moments_figure", "ranking_figure", "rank_histogram_figure",
           "similarity_figure", "thumbnail_strip", "training_curves_figure", "training_log_figure",
           "video_frames_figure"]

BORDER = 2  # px of frame between thumbnails, so that a blank frame never looks like a gap
BORDER_GREY = 128
AFA_NOTE = ("AFA weights depend on the video only (the student stores one vector per video); "
            "teacher relevance and the ground truth depend on the caption.")


def framed_strip(frames: np.ndarray, count: int | None = None) -> np.ndarray:
    """The first `count` frames (F, 3, H, W) uint8 side by side, each framed in grey: (H+2b, n(W+2b), 3)."""
    frames = np.asarray(frames)[: len(frames) if count is None else count]
    padded = np.pad(frames.transpose(0, 2, 3, 1), ((0, 0), (BORDER, BORDER), (BORDER, BORDER), (0, 0)),
                    constant_values=BORDER_GREY)
    return np.concatenate(list(padded), axis=1) if len(padded) else np.zeros((1, 1, 3), np.uint8)


def attention_figure(videos: Sequence[dict], seed: int | None = None, title: str | None = None) -> Figure:
    """One panel per video: its framed frame thumbnails over a heatmap of per-frame weights, every
    panel on one colour scale with one colour bar.

    Each entry of `videos`: `frames` uint8 (F, 3, H, W), `mask` (F,), `caption` str, optional
    `video_id`, and `rows`, an ordered {label: weights (F,)} (AFA weights, teacher relevance,
    ground truth, ...). `seed` (of the models shown) goes into the title.
    """
    n_rows = max((len(v["rows"]) for v in videos), default=1)
    vmax = max((float(np.max(np.asarray(w, dtype=float)[: int(np.sum(v["mask"]))]))
                for v in videos for w in v["rows"].values()), default=1.0)
    height = (1.5 + 0.35 * n_rows) * max(1, len(videos)) + 0.9
    fig = Figure(figsize=(12, height))
    outer = fig.add_gridspec(max(1, len(videos)), 2, width_ratios=[60, 1], hspace=0.6, wspace=0.02,
                             top=1 - 0.75 / height, bottom=0.45 / height, left=0.12, right=0.93)
    widest = max((int(np.sum(v["mask"])) for v in videos), default=1)  # frames line up across panels
    heat_axes = []
    for panel, video in enumerate(videos):
        valid = int(np.sum(video["mask"]))
        grid = outer[panel, 0].subgridspec(2, 1, height_ratios=[1.0, 0.3 * n_rows], hspace=0.05)
        ax_frames = fig.add_subplot(grid[0])
        ax_frames.imshow(framed_strip(video["frames"], valid), aspect="auto", extent=(0, valid, 1, 0))
        ax_frames.set_xlim(0, widest)
        ax_frames.set_axis_off()
        name = f"{video['video_id']}: " if video.get("video_id") else ""
        ax_frames.set_title("\n".join(textwrap.wrap(f"{name}“{video['caption']}”", 120)), fontsize=9, loc="left")
        ax_heat = fig.add_subplot(grid[1])
        matrix = np.stack([np.asarray(w, dtype=float)[:valid] for w in video["rows"].values()])
        sns.heatmap(matrix, ax=ax_heat, cmap="viridis", vmin=0.0, vmax=vmax, cbar=False, annot=valid <= 16,
                    fmt=".2f", annot_kws={"fontsize": 6}, yticklabels=list(video["rows"]),
                    xticklabels=[str(i) for i in range(valid)], linewidths=0.5, linecolor="white")
        ax_heat.set_xlim(0, widest)
        ax_heat.tick_params(axis="y", labelsize=7, rotation=0)
        ax_heat.tick_params(axis="x", labelsize=7)
        ax_heat.set_xlabel("frame" if panel == len(videos) - 1 else "")
        heat_axes.append(ax_heat)
    if heat_axes:
        mappable = heat_axes[0].collections[0]
        fig.colorbar(mappable, cax=fig.add_subplot(outer[:, 1]), label="weight on the frame")
    heading = title or "Frame weights" + (f" (models of seed {seed})" if seed is not None else "")
    has_afa = any("AFA" in label for v in videos for label in v["rows"])
    fig.suptitle(f"{heading}\n{AFA_NOTE}" if has_afa else heading, fontsize=9, x=0.02, ha="left", y=1.0)
    return fig


def video_frames_figure(videos: Sequence[dict]) -> Figure:
    """Sampled frames of a few videos, each frame labelled with its second in the video.

    Each entry: `frames` uint8 (F, 3, H, W), `mask` (F,), `seconds` (valid F,), `title` str."""
    fig = Figure(figsize=(12, 1.9 * max(1, len(videos))))
    for i, video in enumerate(videos):
        ax = fig.add_subplot(len(videos), 1, i + 1)
        valid = int(np.sum(video["mask"]))
        ax.imshow(framed_strip(video["frames"], valid), extent=(0, valid, 1, 0), aspect="auto")
        ax.set_xticks(np.arange(valid) + 0.5, [f"{s:.0f} s" for s in video["seconds"][:valid]], fontsize=7)
        ax.set_yticks([])
        ax.set_title("\n".join(textwrap.wrap(video["title"], 140)), fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def training_curves_figure(histories: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Training loss per epoch, one line per run."""
    fig = Figure(figsize=(8, 3.8))
    ax = fig.add_subplot()
    for label, losses in histories.items():
        ax.plot(range(1, len(losses) + 1), losses, marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    if histories:
        ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    else:
        ax.text(0.5, 0.5, "no training runs", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


# the panels of training_log_figure: a title and which of a run's scalars (tclib.monitor) it draws
TRAINING_PANELS = (("loss", lambda name: name in ("loss", "epoch_loss") or name.startswith("loss/")),
                   ("learning rate", lambda name: name.startswith("lr/")),
                   ("samples/s", lambda name: name == "samples_per_s"),
                   ("share of the step waiting for data", lambda name: name == "data_wait_share"),
                   ("GPU memory peak (GB)", lambda name: name == "gpu_memory_peak_gb"))


def training_panel(name: str) -> str:
    """The panel of training_log_figure that draws the scalar `name` (one of its own when none is named)."""
    return next((title for title, draws in TRAINING_PANELS if draws(name)), name)


def training_log_figure(frame: pd.DataFrame, title: str = "") -> Figure:
    """The scalars of training runs over their steps (tclib.monitor.read_training_log): one row of panels
    per run (column `run`; one run without it), one panel per kind of scalar (loss and its terms, with
    the epochs' mean loss as dots; learning rates; throughput; data-wait share; GPU memory), each
    panel's scale shared by the runs."""
    frame = frame if "run" in frame else frame.assign(run="")
    drawn = set(frame["name"].map(training_panel))
    panels = [t for t, _ in TRAINING_PANELS if t in drawn] + sorted(drawn - {t for t, _ in TRAINING_PANELS})
    runs = list(dict.fromkeys(frame["run"]))
    names = list(dict.fromkeys(frame["name"]))  # a scalar has one colour in every run's panel
    colours = {n: f"C{i % 10}" for p in panels for i, n in enumerate(n for n in names if training_panel(n) == p)}
    fig = Figure(figsize=(3.3 * max(1, len(panels)), 0.5 + 2.3 * max(1, len(runs))))
    if not panels:
        fig.text(0.5, 0.5, "no training scalars", ha="center", va="center")
        return fig
    axes = fig.subplots(len(runs), len(panels), sharey="col", squeeze=False)
    for (row, run), (column, panel) in ((r, c) for r in enumerate(runs) for c in enumerate(panels)):
        training_panel_plot(axes[row, column], frame[frame["run"] == run], panel, colours)
        axes[row, column].set_title(panel if row == 0 else "", fontsize=8)
        axes[row, column].set_xlabel("step" if row == len(runs) - 1 else "", fontsize=7)
        if column == 0 and run:
            axes[row, column].set_ylabel("\n".join(textwrap.wrap(str(run), 24)), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def training_panel_plot(ax, scalars: pd.DataFrame, panel: str, colours: Mapping[str, str]) -> None:
    """One run's scalars of one panel of training_log_figure, one line per name."""
    scalars = scalars[scalars["name"].map(training_panel) == panel]
    for name, rows in scalars.groupby("name", sort=False):
        ax.plot(rows["step"], rows["value"], label=name, linewidth=1.0, color=colours[name],
                **({"marker": "o", "linestyle": "none", "markersize": 4} if name == "epoch_loss" else {}))
    if panel == "learning rate" and (scalars["value"] > 0).any():
        ax.set_yscale("log")  # CLIP's rate is a thousandth of the new layers'; 0 in the warm-up's first step
    if panel == "share of the step waiting for data":
        ax.set_ylim(0, 1)
    if len(ax.lines) > 1:
        ax.legend(fontsize=6)
    ax.tick_params(labelsize=7)


def rank_histogram_figure(ranks: pd.DataFrame, n_videos: int) -> Figure:
    """Where each caption's own video ranks, one histogram per model (all seeds together); the
    dashed lines mark R@1, R@5 and R@10."""
    models = list(dict.fromkeys(ranks["model"]))
    columns = min(4, max(1, len(models)))
    rows = -(-len(models) // columns)
    fig = Figure(figsize=(3.2 * columns, 2.4 * rows))
    bins = np.unique(np.geomspace(1, max(n_videos, 2) + 1, 25).astype(int))
    for i, model in enumerate(models):
        ax = fig.add_subplot(rows, columns, i + 1)
        values = ranks.loc[ranks["model"] == model, "rank"].to_numpy()
        ax.hist(values, bins=bins.tolist(), color="C0")
        ax.set_xscale("log")
        for k in (1, 5, 10):
            ax.axvline(k + 1, color="grey", linestyle="--", linewidth=0.7)
        ax.set_title("\n".join(textwrap.wrap(str(model), 32)), fontsize=8)
        ax.set_xlabel("rank of the correct video", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def similarity_figure(sim: np.ndarray, labels: Sequence[str], title: str = "") -> Figure:
    """A (captions x videos) similarity matrix of one batch; the diagonal holds the true pairs."""
    fig = Figure(figsize=(1.2 + 0.5 * len(labels), 0.9 + 0.45 * len(labels)))
    ax = fig.add_subplot()
    sns.heatmap(sim, ax=ax, cmap="magma", annot=len(labels) <= 10, fmt=".2f", annot_kws={"fontsize": 6},
                xticklabels=labels, yticklabels=labels, cbar_kws={"label": "logit"})
    for i in range(len(labels)):
        ax.add_patch(Rectangle((i, i), 1, 1, fill=False, edgecolor="cyan", linewidth=1.2))
    ax.set_xlabel("video")
    ax.set_ylabel("caption of the video")
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def thumbnail_strip(frames: np.ndarray, mask: np.ndarray, count: int = 4) -> np.ndarray:
    """`count` frames spread evenly over a video's valid frames, framed side by side (see framed_strip)."""
    valid = max(1, int(np.sum(mask)))
    picks = np.unique(np.linspace(0, valid - 1, min(count, valid)).round().astype(int))
    return framed_strip(np.asarray(frames)[picks])


def ranking_figure(rankings: Mapping[str, pd.DataFrame], thumbnails: Mapping[str, np.ndarray], query: str) -> Figure:
    """Top videos of one query, the models side by side (one column each, best video on top): a
    thumbnail strip per video (an (H, W, 3) image, see thumbnail_strip) with its id and score, and a
    green frame around the correct video. Each ranking has columns video_id, score, correct."""
    models = list(rankings)
    k = max((len(r) for r in rankings.values()), default=1)
    columns = max(1, len(models))
    fig = Figure(figsize=(0.4 + 1.5 * columns, 0.9 + 0.62 * k))
    grid = fig.add_gridspec(k, columns, left=0.3 / (0.4 + 1.5 * columns), right=0.995, bottom=0.01,
                            top=1 - 0.8 / (0.9 + 0.62 * k), hspace=0.55, wspace=0.08)
    for column, model in enumerate(models):
        for place, row in enumerate(rankings[model].itertuples(index=False)):
            ax = fig.add_subplot(grid[place, column])
            ax.imshow(thumbnails[row.video_id])
            ax.set_xticks([])
            ax.set_yticks([])
            colour = "limegreen" if row.correct else "lightgrey"
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if row.correct else 1)
            ax.set_xlabel(f"{row.video_id}  {row.score:.2f}", fontsize=8, labelpad=1)
            if place == 0:
                ax.set_title("\n".join(part for line in model.split("\n") for part in textwrap.wrap(line, 22)),
                             fontsize=8.5)
            if column == 0:
                ax.set_ylabel(str(place + 1), fontsize=9, rotation=0, ha="right", va="center")
    fig.suptitle("\n".join(textwrap.wrap(f"“{query}”", 150)), fontsize=10, x=0.01, ha="left")
    return fig


def moments_figure(queries: Sequence[tuple[str, Sequence[dict]]]) -> Figure:
    """The best moments of each query, one row per query (best on the left): a thumbnail strip per
    moment (an (H, W, 3) image, see thumbnail_strip) labelled with its video, its seconds and its score,
    and a green frame around those marked `correct`. Each moment: `strip`, `label`, `score`, `correct`."""
    k = max((len(moments) for _, moments in queries), default=1)
    height = 0.2 + 1.35 * max(1, len(queries))
    fig = Figure(figsize=(0.3 + 2.3 * k, height))
    grid = fig.add_gridspec(max(1, len(queries)), k, left=0.01, right=0.99, bottom=0.02, top=1 - 0.2 / height,
                            hspace=0.85, wspace=0.06)
    for row, (query, moments) in enumerate(queries):
        for column, moment in enumerate(moments):
            ax = fig.add_subplot(grid[row, column])
            ax.imshow(moment["strip"])
            ax.set_xticks([])
            ax.set_yticks([])
            correct = bool(moment.get("correct"))
            for spine in ax.spines.values():
                spine.set_edgecolor("limegreen" if correct else "lightgrey")
                spine.set_linewidth(3 if correct else 1)
            ax.set_xlabel(f"{moment['label']}  {moment['score']:.3f}", fontsize=7.5, labelpad=1)
            if column == 0:
                ax.set_title("\n".join(textwrap.wrap(f"{row + 1}. “{query}”", 40 * k)), fontsize=9, loc="left")
    return fig
