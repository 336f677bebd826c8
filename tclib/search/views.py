"""What 08_search shows of an index: the best moments of queries as strips of their frames (with their
seconds and scores), a moment's frames under the student's AFA weights, and a widget to type queries.
Frames are decoded for the units shown only, as the index sampled them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..plots import Figure, attention_figure, moments_figure, thumbnail_strip
from .query import Index
from .units import seconds_text
from .units import unit_frames as read_unit


def summary(indexes: dict[str, Index]) -> pd.DataFrame:
    """One row per index: its units, the model, the FAISS index and the collection's folder."""
    rows = [{"index": name, "units": len(index), "model": f"{index.spec.run} seed {index.spec.seed}",
             "times": times_of(index),
             "search": index.choice.describe(), "failed": index.manifest["failed"], "folder": str(index.folder)}
            for name, index in indexes.items()]
    return pd.DataFrame(rows).set_index("index")


def times_of(index: Index) -> str:
    """What an index's start and end times are, in a few words."""
    clocks = set(index.units["clock"])
    if index.note:
        return "the sampler's seconds (an earlier tclib's moments)"
    if "player" in clocks:
        return "seconds as a player shows them"
    return "the data set's clips (the sampler's seconds)" if "sampler" in clocks else "whole videos"


def unit_frames(index: Index, row: Any) -> tuple[np.ndarray, np.ndarray]:
    """(frames, mask) of a result or units row, decoded as the index sampled it."""
    return read_unit(index.file_of(row.path), index.spec.frame_sampling, row.start, row.end, row.clock)


def moment_label(row: Any) -> str:
    """A unit as the strips and the widget name it: its key, or its video and seconds."""
    return row.key if pd.isna(row.start) else f"{row.video_id} {seconds_text(row.start)}-{seconds_text(row.end)} s"


def truth_of(index: Index) -> dict[str, list[dict]]:
    """{long video: its stretches (video_id, start, end)} when the collection is the demo's joined videos."""
    path = Path(index.root) / "long_videos.json"
    return {v["video_id"]: v["parts"] for v in json.loads(path.read_text())} if path.is_file() else {}


def is_correct(row: Any, wanted: str | None, truth: dict[str, list[dict]]) -> bool:
    """Whether a result shows `wanted` (a test video): itself, or a moment inside its stretch."""
    if wanted is None:
        return False
    if pd.isna(row.start) or row.video_id not in truth:
        return row.key == wanted
    return any(p["video_id"] == wanted and p["start"] <= row.start and row.end <= p["end"]
               for p in truth[row.video_id])


def search_figure(index: Index, queries: list[str], k: int = 5, wanted: list[str | None] | None = None
                  ) -> tuple[pd.DataFrame, Figure]:
    """The k best units of each query, and their strips (green: the query's own video or its moment, when
    `wanted` names it)."""
    results = index.search(queries, k)
    truth, wanted = truth_of(index), wanted or [None] * len(queries)
    shown = []
    for n, query in enumerate(queries):
        moments = []
        for row in results.iloc[n * k:(n + 1) * k].itertuples(index=False):
            frames, mask = unit_frames(index, row)
            moments.append({"strip": thumbnail_strip(frames, mask), "label": moment_label(row), "score": row.score,
                            "correct": is_correct(row, wanted[n], truth)})
        shown.append((query, moments))
    return results, moments_figure(shown)


@torch.no_grad()
def attention_of(index: Index, key: str) -> Figure:
    """One unit's frames under the student's AFA weights (a student without AFA: its mean's equal weights)."""
    row = index.units[index.units.key == key]
    if row.empty:
        raise KeyError(f"{key!r} is not a unit of {index.folder} (e.g. {', '.join(index.units.key[:3])})")
    row = row.iloc[0]
    frames, mask = unit_frames(index, row)
    student = index.student
    _, logits = student.encode_video(torch.from_numpy(frames[None]).to(index.device),
                                     torch.from_numpy(mask[None]).to(index.device))
    if student.afa is None:
        weights, label = mask / max(1, mask.sum()), "mean pooling (no AFA)"
    else:
        assert logits is not None  # a student with AFA gives its logits
        weights = student.afa.aggregation_weights(logits, torch.from_numpy(mask[None]).to(index.device))[0]
        weights, label = weights.cpu().numpy(), f"{index.spec.run} AFA"
    return attention_figure([{"frames": frames, "mask": mask, "video_id": moment_label(row), "caption": row.path,
                              "rows": {label: weights}}], seed=index.spec.seed)


def widget(index: Index, k: int = 5) -> Any:
    """A query box (Enter searches) over the best moments, and a picker of one of them under AFA's weights."""
    import ipywidgets as w
    from IPython.display import display

    query = w.Text(value="a red circle", description="query", layout=w.Layout(width="95%"),
                   placeholder="any text; Enter to search", continuous_update=False)
    pick = w.Dropdown(options=[], description="moment", layout=w.Layout(width="60%"))
    results_out, attention_out = w.Output(), w.Output()

    def show_results(*_: Any) -> None:
        results_out.clear_output(wait=True)
        with results_out:
            results, figure = search_figure(index, [query.value], k)
            display(figure)
        pick.options = list(results.key)
        pick.value = pick.options[0] if pick.options else None  # shows its frames under AFA

    def show_attention(*_: Any) -> None:
        attention_out.clear_output(wait=True)
        if pick.value:
            with attention_out:
                display(attention_of(index, pick.value))

    query.observe(show_results, names="value")
    pick.observe(show_attention, names="value")
    show_results()
    return w.VBox([query, results_out, pick, attention_out])
