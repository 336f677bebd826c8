"""The Markdown tables the experiment publishes (table.md) and the paper's tables (tclib.paper_tables)
are written with: models in the paper's order, mean ± std over seeds, one line per row."""

from __future__ import annotations

import pandas as pd

from ..params import Params
from .runs import parse_run, teacher_label

TABLE_COLUMNS = ["R1", "R5", "R10", "MdR", "MnR", "SumR"]
DIRECTIONS = {"t2v": "Text-to-video", "v2t": "Video-to-text"}


def sort_models(table: pd.DataFrame, P: Params) -> pd.DataFrame:
    """Rows in the paper's order: CLIP4Clip baselines, teachers, TeachCLIP students; seeds in order."""
    specs = [parse_run(r) for r in P.runs]
    baselines = [s.label for s in specs if not s.coarse]
    students = [s.label for s in specs if s.coarse]
    teachers = [teacher_label(t) for t in P.teachers]
    table = table.copy()
    table["model"] = pd.Categorical(table["model"], baselines + teachers + students, ordered=True)
    return table.sort_values(["model", "seed", "inference"]).reset_index(drop=True)


def summary_table(metrics: pd.DataFrame, direction: str = "t2v") -> pd.DataFrame:
    """mean ± std over seeds of one direction's columns ("t2v" or "v2t"), one row per model."""
    columns = [f"{direction}_{c}" for c in TABLE_COLUMNS]
    grouped = metrics.groupby("model", observed=True)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=0).fillna(0.0)
    table = pd.DataFrame(index=mean.index)
    for column, name in zip(columns, ["R@1", "R@5", "R@10", "MdR", "MnR", "SumR"], strict=True):
        table[name] = [f"{m:.1f} ± {s:.1f}" for m, s in zip(mean[column], std[column], strict=True)]
    table["seeds"] = grouped.size().values
    return table.reset_index()


def markdown_table(table: pd.DataFrame, P: Params, direction: str = "t2v", inference: str = "plain") -> str:
    """A summary table with the header table.md gives it: direction, experiment, backbone, seeds."""
    how = (" **with dual-softmax inference (DSL)**: each score weighted by a softmax over all test queries, "
           "not comparable with numbers without it" if inference == "dsl" else "")
    header = (f"{DIRECTIONS[direction]} retrieval on {P.exp} ({P.clip_model}){how}, mean ± std over seeds "
              f"{', '.join(map(str, P.seeds))}.\n\n")
    return header + markdown_rows(table)


def markdown_rows(table: pd.DataFrame) -> str:
    """`table` as a Markdown table: its columns as the header, one line per row."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
