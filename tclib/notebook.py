"""What the notebooks share: their parameters, where they write, logging, and the tables and
figures they show between the stages.

A notebook's parameters cell names a params file and a few knobs:

    params = "params/demo.yaml"   # relative to the project root (tclib.project)
    seeds = None                  # None: the file's value; else overrides it
    device = None

`notebook_params(params, globals())` reads the file and applies the knobs that are not None. When
papermill injected params keys itself (`papermill -f params/<exp>.yaml`, which injects the whole
file), those keys are the params and the file named by `params` is not read.

Where results go: a notebook that `tclib reproduce` runs publishes to results/<exp>/ (metrics.csv,
table.md, attention.png, ...). Any other run of it (JupyterLab, papermill by hand) writes what it
makes to results/<exp>/scratch/, so exploring never overwrites what a reproduction published. The
stages themselves (frames, teachers, students) are shared: each is keyed by its inputs and found
done whoever asks.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .analysis import teacher_batch
from .data.frames import sampled_frame_seconds
from .errors import ParamsError
from .experiment.data import Data, first_caption_per_video, test_set
from .experiment.plan import stage_plan
from .experiment.runs import TEACHER_NAMES
from .experiment.teachers import Teachers, load_teacher, prepared_teachers
from .monitor import read_training_logs
from .params import Params, load_params
from .plots import (
    Figure,
    attention_figure,
    rank_histogram_figure,
    similarity_figure,
    training_curves_figure,
    training_log_figure,
    video_frames_figure,
)
from .preflight import device_problems, teacher_problems
from .progress import in_batch_run
from .runlog import LOG_FORMAT
from .scoring import cache_size, read_teacher_features
from .stages import read_record
from .train import resolve_device

KNOBS = ("seeds", "device", "plot_videos", "plot_video_ids")  # params keys a parameters cell may override


def notebook_params(params: str, namespace: Mapping[str, Any]) -> Params:
    """The params of a notebook: the file `params` with the knobs of `namespace` that are not None,
    or, when papermill injected other params keys into `namespace`, those keys with the knobs. Its
    teachers and their options are checked against the models too, and its device and gpus against
    this machine's GPUs (tclib.preflight)."""
    knobs = {key: namespace[key] for key in KNOBS if namespace.get(key) is not None}
    injected = {key: namespace[key] for key in Params.field_names() if key in namespace and key not in KNOBS}
    if injected:
        P = Params.from_mapping({**injected, **knobs}, source="notebook parameters").resolved()
    else:
        P = load_params(params, knobs)
    problems = teacher_problems(P) + device_problems(P.device, P.gpus)
    if problems:
        raise ParamsError("\n".join(f"{params}: {line}" for line in problems))
    return P


def output_dir(P: Params) -> Path:
    """results/<exp>/ in a run of `tclib reproduce`, else results/<exp>/scratch/."""
    return P.exp_dir if in_batch_run() else P.exp_dir / "scratch"


def setup_logging(level: int = logging.INFO) -> None:
    """The kit's log lines on standard output (a notebook shows standard error as an error)."""
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stdout, force=True)


# ------------------------------------------------------------------------------------------- 01


def data_summary(P: Params, data: Data) -> pd.DataFrame:
    """Videos and captions per split, and the frames kept per video."""
    rows = []
    for split, table in (("train", data.train), ("test", data.test)):
        rows_idx = [data.cache.index_of(v) for v in dict.fromkeys(table.clip_id)]
        frames = np.asarray(data.cache.mask[rows_idx]).sum(axis=1)
        rows.append({"split": split, "videos": len(rows_idx), "captions": len(table),
                     "frames per video (min/mean/max)": f"{frames.min()}/{frames.mean():.1f}/{frames.max()}"})
    rows.append({"split": "failed to decode", "videos": len(data.cache.failed), "captions": 0,
                 "frames per video (min/mean/max)": ""})
    return pd.DataFrame(rows).set_index("split")


def sample_videos(P: Params, data: Data, count: int = 2, split: str = "train") -> Figure:
    """The frames the models see of the first `count` videos of a split, each with the second it was
    taken at, and the video's captions."""
    table = data.train if split == "train" else data.test
    videos = []
    for video_id in list(dict.fromkeys(table.clip_id))[:count]:
        frames, mask = data.cache.get(video_id)
        row = table[table.clip_id == video_id].iloc[0]
        segment = {} if pd.isna(row.start) else {"start_time": int(row.start), "end_time": int(row.end)}
        seconds = sampled_frame_seconds(row.video_path, data.cache.sampling, **segment)
        captions = table.caption[table.clip_id == video_id].tolist()
        videos.append({"frames": frames, "mask": mask, "seconds": seconds,
                       "title": f"{split} {video_id} ({len(seconds)} frames): " + " | ".join(captions)})
    return video_frames_figure(videos)


# ------------------------------------------------------------------------------------------- 02


def teacher_summary(teachers: Teachers) -> pd.DataFrame:
    """One row per teacher and seed of 02's result: where it came from and, when cached, its feature
    cache's size."""
    rows = []
    for (name, seed), teacher in teachers.items():
        row = {"teacher": name, "seed": seed,
               "source": read_record(teacher.directory).get("info", {}).get("checkpoint", "")}
        if (teacher.features / "manifest.json").is_file():
            features = read_teacher_features(teacher.features)
            row.update({"captions cached": len(next(iter(features.text.values()))),
                        "videos cached": len(features.video_rows),
                        "features": ", ".join(f"{k} {tuple(v.shape[1:])}"
                                              for k, v in {**features.text, **features.video}.items()),
                        "cache MB": round(cache_size(features)["bytes"] / 2**20, 1)})
        rows.append(row)
    return pd.DataFrame(rows).set_index(["teacher", "seed"])


def teacher_view(P: Params, data: Data, name: str, captions: int = 8, relevance_captions: int = 3
                 ) -> tuple[Figure, Figure]:
    """A teacher (first seed) on the first `captions` test videos as one batch: its similarity matrix
    (what coarse-grained teaching passes on) and, for the first `relevance_captions` of them, its
    frame-text relevance over the caption's own video (what fine-grained teaching passes on)."""
    test = test_set(P, data)
    chosen = first_caption_per_video(data)[:captions]
    teacher = load_teacher(P, data, prepared_teachers(P, data)[(name, P.seeds[0])])
    sim, relevance = teacher_batch(teacher, test, np.array(chosen), resolve_device(P.device))
    label = TEACHER_NAMES.get(name, name)
    labels = [test.video_ids[test.caption_video[c]] for c in chosen]
    sim_figure = similarity_figure(sim, labels, title=f"{label} (seed {P.seeds[0]}): similarity of one batch")
    panels = []
    for i, c in enumerate(chosen[:relevance_captions]):
        frames, mask = data.cache.get(labels[i])
        panels.append({"frames": frames, "mask": mask, "video_id": labels[i], "caption": data.test.caption.iloc[c],
                       "rows": {f"{label} relevance": relevance[i]}})
    relevance_figure = attention_figure(panels, title=f"{label} (seed {P.seeds[0]}): frame-text relevance")
    return sim_figure, relevance_figure


# ---------------------------------------------------------------------------------------- 02, 03


def training_histories(P: Params, data: Data, kind: str = "students") -> dict[str, list[float]]:
    """Loss per epoch of every run of this params file's `kind` ("students" or "teachers") trained here."""
    histories = {}
    for key, directory in stage_plan(P, data).items():
        history = directory / "run" / "history.json"
        if key.startswith(f"{kind}/") and history.is_file():
            histories[key.removeprefix(f"{kind}/")] = json.loads(history.read_text())["epoch_loss"]
    return histories


def training_curves(P: Params, data: Data, kind: str = "students") -> Figure:
    histories = training_histories(P, data, kind)
    return training_curves_figure(histories, title=f"{kind} of {P.exp}: training loss per epoch")


class Note(str):
    """A few words a notebook shows as Markdown where there is nothing to draw."""

    def _repr_markdown_(self) -> str:
        return str(self)


def training_scalars(P: Params, data: Data, kind: str = "students") -> Figure | Note:
    """What the first seed of every run of `kind` logged as it trained (tclib.monitor: loss and its terms,
    learning rates, throughput, data wait), or a note when none of them did."""
    seed = P.seeds[0]
    folders = {key.split("/")[1]: directory / "run" for key, directory in stage_plan(P, data).items()
               if key.startswith(f"{kind}/") and key.endswith(f"/seed{seed}")}
    return training_scalars_view(folders, title=f"{kind} of {P.exp}, seed {seed}: scalars logged while training")


def training_scalars_view(folders: Mapping[str, Path], title: str = "") -> Figure | Note:
    """The scalars of the runs in `folders` ({run: its folder}) in one figure, or a note naming the runs
    when none of them wrote scalars.csv (runs trained before it was written, or given as checkpoints)."""
    logs = read_training_logs(folders)
    if len(logs):
        return training_log_figure(logs, title)
    runs = ", ".join(folders) or "none"
    return Note(f"*No scalars logged while training* (runs: {runs}): they were trained before runs wrote "
                "`scalars.csv`, or not trained here.")


# ------------------------------------------------------------------------------------------- 04


def rank_histograms(P: Params, out: Path) -> Figure:
    """Histograms of ranks.csv (written by tclib.experiment.evaluation.evaluate_all into `out`)."""
    ranks = pd.read_csv(Path(out) / "ranks.csv")
    return rank_histogram_figure(ranks, n_videos=int(ranks.groupby(["model", "seed"])["video_id"].nunique().max()))
