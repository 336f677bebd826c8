"""05 · The attention report: AFA weights and teacher relevance against the ground truth
-> results/<exp>/attention_correlation.csv and attention.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..analysis import afa_weights, attention_statistics, ground_truth, teacher_relevance
from ..errors import ParamsError
from ..evaluate import TestSet
from ..params import Params
from ..plots import Figure, attention_figure
from ..train import resolve_device
from .data import Data, first_caption_per_video, test_set
from .runs import parse_run, teacher_label
from .students import load_student, student_seeds
from .teachers import load_teacher, prepared_teachers


def frame_weights(P: Params, data: Data, test: TestSet, device: torch.device,
                  captions: np.ndarray | None = None) -> dict[tuple[str, int | None], np.ndarray]:
    """{(label, seed): (N, F) weights} for the test captions `captions` (default all): each AFA
    student's aggregation weights over the caption's video and each teacher's frame-text relevance,
    computed a batch at a time."""
    captions = np.arange(len(test.tokens)) if captions is None else np.asarray(captions)
    videos, back = np.unique(test.caption_video[captions], return_inverse=True)
    weights: dict[tuple[str, int | None], np.ndarray] = {}
    teachers = prepared_teachers(P, data)
    for run in [r for r in P.runs if parse_run(r).afa]:
        for seed in student_seeds(P, run):
            student = load_student(P, data, teachers, run, seed)
            weights[(parse_run(run).label + " AFA", seed)] = afa_weights(student, test, P.eval_batch_size, device,
                                                                         videos)[back]
    for (name, seed), teacher in teachers.items():
        relevance = teacher_relevance(load_teacher(P, data, teacher), test, P.eval_batch_size, device, captions)
        weights[(teacher_label(name) + " relevance", seed)] = relevance
    return weights


def plot_captions(P: Params, data: Data) -> list[int]:
    """The test captions attention.png shows: the first caption of each of plot_video_ids (an
    unknown id is an error naming the known ones' first few), else of the first plot_videos videos."""
    ids = list(data.test.clip_id)
    if P.plot_video_ids:
        unknown = [v for v in P.plot_video_ids if v not in ids]
        if unknown:
            raise ParamsError(f"plot_video_ids: {unknown} are not test videos of {P.exp} "
                              f"(test videos: {', '.join(list(dict.fromkeys(ids))[:5])}, ...)")
        return [ids.index(v) for v in P.plot_video_ids]
    return first_caption_per_video(data)[:P.plot_videos]


def attention_report(P: Params, data: Data, out_dir: Path | None = None) -> tuple[pd.DataFrame, Figure]:
    """AFA weights and teacher relevance against the ground truth. Writes to `out_dir` (default
    results/<exp>/): attention_correlation.csv (`attention_statistics` per weights, mean and std
    over seeds; empty without ground truth) and attention.png (heatmaps of the plot_captions for
    the first seed). Returns the statistics and the figure."""
    out_dir = Path(out_dir or P.exp_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    test = test_set(P, data)
    truth, kinds = ground_truth(P.data_root, data.cache.sampling)
    weights = frame_weights(P, data, test, resolve_device(P.device))
    keys = [(test.video_ids[v], c) for v, c in zip(test.caption_video, data.test.caption, strict=True)]
    stats = correlation_table(weights, truth, kinds, keys)
    stats.to_csv(out_dir / "attention_correlation.csv", index=False)
    figure = heatmaps(P, data, weights, truth, keys)
    figure.savefig(out_dir / "attention.png", dpi=110, bbox_inches="tight")
    return stats, figure


def correlation_table(weights: dict, truth: dict, kinds: dict, keys: list[tuple[str, str]]) -> pd.DataFrame:
    """`attention_statistics` of every weights, mean over seeds (and the Pearson's std); empty without truth."""
    if not truth:
        return pd.DataFrame()
    gt = np.stack([truth[k] for k in keys])
    frame_kinds = np.stack([kinds[video_id] for video_id, _ in keys])
    stats = pd.DataFrame([{"weights": label, "seed": seed, **attention_statistics(w, gt, frame_kinds)}
                          for (label, seed), w in weights.items()])
    grouped = stats.drop(columns="seed").groupby("weights", sort=False)
    stats = grouped.mean().join(grouped["pearson_with_ground_truth"].std(ddof=0).rename("pearson_std"))
    return stats.reset_index()


def heatmaps(P: Params, data: Data, weights: dict, truth: dict, keys: list[tuple[str, str]]) -> Figure:
    """The heatmaps of attention.png: the plot_captions' frames under every weights of the first seed."""
    seed = P.seeds[0]
    panels = []
    for i in plot_captions(P, data):
        rows = {label: w[i] for (label, s), w in weights.items() if s in (seed, None)}
        if truth:
            rows["ground truth"] = truth[keys[i]]
        frames, mask = data.cache.get(keys[i][0])
        panels.append({"frames": frames, "mask": mask, "caption": keys[i][1], "video_id": keys[i][0], "rows": rows})
    return attention_figure(panels, seed=seed)
