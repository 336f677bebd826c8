"""The paper's tables: every experiment's metrics beside the published numbers.

Inputs:

* ``results/paper_numbers.csv``: the published numbers, one row per model, data set, backbone,
  direction and inference (``dsl``: yes/no), with R1, R5, R10, MdR, MnR, SumR, and where each row
  was read (``source``, ``table``). An empty cell is a number that was not found in that source; it
  is never filled in by guess. An empty SumR is the sum of R1, R5 and R10 when all three are there.
* every experiment: the params files in ``params/`` and, for each, ``results/<exp>/metrics.csv``
  and ``results/<exp>/params.yaml`` as ``tclib reproduce`` (or notebook 04 run by it) leaves them.
  An experiment with a params file and no metrics shows as "not run".

A run is compared with a published row when they have the same data set (``msrvtt-9k``,
``msrvtt-7k``, ``msvd``, ``didemo``, ``activitynet``, ``vatex``), backbone (``ViT-B/32``, ...),
model (:data:`PAPER_MODELS`), direction and inference. A TeachCLIP run is compared only when it is
taught by the params file's teachers (run ``teachclip``); runs naming other teachers, the
coarse-only ablation and the synthetic demo have no published counterpart and appear in tables of
their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import DataError
from .experiment.report import markdown_rows
from .experiment.runs import TEACHER_NAMES, parse_run
from .files import write_text
from .params import Params, load_params

METRICS = ("R1", "R5", "R10", "MdR", "MnR", "SumR")
METRIC_NAMES = {"R1": "R@1", "R5": "R@5", "R10": "R@10", "MdR": "MdR", "MnR": "MnR", "SumR": "SumR"}
PUBLISHED_COLUMNS = ("model", "dataset", "backbone", "direction", "dsl", *METRICS, "source", "table", "note")
DATASETS = {"msrvtt-9k": "MSR-VTT 1k-A (trained on 9k)", "msrvtt-7k": "MSR-VTT 1k-A (trained on 7k)",
            "msvd": "MSVD", "didemo": "DiDeMo", "activitynet": "ActivityNet Captions", "vatex": "VATEX"}
DIRECTIONS = {"t2v": "text-to-video", "v2t": "video-to-text"}
BACKBONES = ["ViT-B/32", "ViT-B/16"]  # the paper's main backbone first
# Our run or teacher name -> the model's name in paper_numbers.csv, in the order of the paper's tables.
PAPER_MODELS = {"clip4clip-meanP": "CLIP4Clip-meanP", "clip4clip-seqTransf": "CLIP4Clip-seqTransf",
                **{name: label for name, label in TEACHER_NAMES.items()}, "teachclip": "TeachCLIP"}
NOT_RUN = "not run"
NOT_FOUND = "n/f"  # a published number that was not found


@dataclass
class Experiment:
    """One experiment: its name, the params of its last run (or of its params file), and its metrics
    (None when it has not been run)."""

    exp: str
    params: Params
    metrics: pd.DataFrame | None

    @property
    def dataset(self) -> str:
        return dataset_key(self.params)

    @property
    def backbone(self) -> str:
        return backbone_name(self.params.clip_model)


def dataset_key(P: Params) -> str:
    """The data set as paper_numbers.csv names it; "synthetic" for the demo's data."""
    if P.synthetic:
        return "synthetic"
    if P.dataset == "msrvtt":
        return "msrvtt-7k" if "7k" in str(P.data_options.get("train_csv", "")) else "msrvtt-9k"
    return P.dataset


def backbone_name(clip_model: str) -> str:
    """"ViT-B-32-quickgelu" -> "ViT-B/32"; a name of another form is kept as it is."""
    parts = clip_model.split("-")
    if len(parts) >= 3 and parts[0] == "ViT" and parts[2].isdigit():
        return f"ViT-{parts[1]}/{parts[2]}"
    return clip_model


def read_published(path: str | Path) -> pd.DataFrame:
    """paper_numbers.csv, checked: the columns, the keys' values, and numbers in the metric cells (or
    empty). A DataError names the file, the line and what is wrong."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read published numbers {path}: {err}") from err
    missing = [c for c in PUBLISHED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(PUBLISHED_COLUMNS)})")
    problems = []
    for i, row in table.iterrows():
        where = f"{path}, line {i + 2}"
        if row.direction not in DIRECTIONS:
            problems.append(f"{where}: direction {row.direction!r} is not t2v or v2t")
        if row.dsl not in ("yes", "no"):
            problems.append(f"{where}: dsl {row.dsl!r} is not yes or no")
        if not row.source.strip():
            problems.append(f"{where}: no source")
        for metric in METRICS:
            if row[metric].strip() and not _is_number(row[metric]):
                problems.append(f"{where}: {metric} {row[metric]!r} is not a number")
    keys = ["model", "dataset", "backbone", "direction", "dsl"]
    for i in table.index[table.duplicated(keys, keep="first")]:
        problems.append(f"{path}, line {i + 2}: a second row for {', '.join(table.loc[i, keys])}")
    if problems:
        raise DataError("\n".join(problems))
    for metric in METRICS:
        table[metric] = pd.to_numeric(table[metric].str.strip().replace("", math.nan))
    table["SumR"] = table.SumR.fillna(table.R1 + table.R5 + table.R10)  # NaN unless all three are given
    return table


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def find_experiments(params_dir: str | Path, results_dir: str | Path) -> list[Experiment]:
    """Every experiment with a params file in `params_dir` or a finished evaluation in `results_dir`
    (results/<exp>/metrics.csv beside the params.yaml of its run), sorted by name."""
    results_dir = Path(results_dir)
    found: dict[str, Experiment] = {}
    for path in sorted(Path(params_dir).glob("*.yaml")):
        P = load_params(path)
        found.setdefault(P.exp, Experiment(P.exp, P, None))
    for metrics_file in sorted(results_dir.glob("*/metrics.csv")):
        run_params = metrics_file.parent / "params.yaml"
        if not run_params.is_file():
            continue  # not written by `tclib reproduce`: nothing says what was run
        P = load_params(run_params)
        found[P.exp] = Experiment(P.exp, P, pd.read_csv(metrics_file))
    return [found[name] for name in sorted(found)]


def experiments_table(experiments: list[Experiment]) -> pd.DataFrame:
    """One row per experiment: its data set, backbone, the models it evaluates, and whether it has run."""
    rows = []
    for e in experiments:
        models = list(e.params.runs) + list(e.params.teachers)
        rows.append({"exp": e.exp, "dataset": DATASETS.get(e.dataset, e.dataset), "backbone": e.backbone,
                     "models": ", ".join(models),
                     "evaluated": NOT_RUN if e.metrics is None else f"{e.metrics.model.nunique()} models"})
    return pd.DataFrame(rows)


def run_model(run: str, P: Params) -> str | None:
    """The published model a run or teacher of `P` is compared with, or None."""
    if run in PAPER_MODELS:  # the CLIP4Clip baselines, the teachers, plain `teachclip`
        return PAPER_MODELS[run]
    spec = parse_run(run)
    if spec.coarse and spec.fine and spec.teachers is not None and list(spec.teachers) == list(P.teachers):
        return "TeachCLIP"
    return None


def our_numbers(experiments: list[Experiment]) -> pd.DataFrame:
    """Mean and std over seeds of each experiment's models, one row per (model, direction, inference):
    columns exp, dataset, backbone, label (our model label), model (the published name or None),
    direction, dsl, seeds, and <metric>, <metric>_std."""
    rows = []
    for e in experiments:
        if e.metrics is None:
            continue
        table = e.metrics.copy()
        if "inference" not in table:
            table["inference"] = "plain"  # written before dual-softmax inference existed
        for (label, run, inference), group in table.groupby(["model", "run", "inference"], sort=False):
            for direction in DIRECTIONS:
                row = dict(exp=e.exp, dataset=e.dataset, backbone=e.backbone, label=label, model=run_model(run, e.params),
                           direction=direction, dsl="yes" if inference == "dsl" else "no", seeds=len(group))
                for metric in METRICS:
                    values = group[f"{direction}_{metric}"] if f"{direction}_{metric}" in group else \
                        group[[f"{direction}_R1", f"{direction}_R5", f"{direction}_R10"]].sum(axis=1)
                    row[metric], row[f"{metric}_std"] = float(values.mean()), float(values.std(ddof=0))
                rows.append(row)
    return pd.DataFrame(rows)


def comparison(experiments: list[Experiment], published: pd.DataFrame) -> pd.DataFrame:
    """Every (data set, backbone, model, direction, inference) that was published or run, one row each:
    ours (mean over seeds, or NaN when not run), published (NaN where not published or not found) and
    ours - published, per metric; `status` says "run" or "not run"; exp, source and table say where
    each side comes from."""
    ours = our_numbers(experiments)
    keys = ["dataset", "backbone", "model", "direction", "dsl"]
    theirs = published[keys + list(METRICS) + ["source", "table"]]
    if ours.empty:
        ours = pd.DataFrame(columns=keys + ["exp", "label", "seeds"] + list(METRICS))
    ours = ours[ours.model.notna() & (ours.dataset != "synthetic")]
    merged = theirs.merge(ours, on=keys, how="outer", suffixes=("_paper", ""))
    planned = {(e.dataset, e.backbone): e.exp for e in experiments}
    merged["exp"] = [exp if isinstance(exp, str) else planned.get((d, b), "")
                     for exp, d, b in zip(merged.exp, merged.dataset, merged.backbone, strict=True)]
    merged["status"] = ["not run" if pd.isna(s) else "run" for s in merged.seeds]
    for metric in METRICS:
        merged[f"{metric}_diff"] = merged[metric] - merged[f"{metric}_paper"]
    return merged.sort_values(keys, key=_paper_order).reset_index(drop=True)


def _paper_order(column: pd.Series) -> pd.Series:
    orders = {"dataset": list(DATASETS), "backbone": BACKBONES, "model": list(PAPER_MODELS.values()),
              "direction": list(DIRECTIONS)}
    order = orders.get(column.name)
    if order is None:
        return column
    return column.map(lambda v: order.index(v) if v in order else len(order))


def cell(ours: float, std: float, seeds: float, published: float, status: str) -> str:
    """"46.1 ± 0.3 / 46.8 (-0.7)": ours (± std over seeds when more than one), the published number,
    their difference; "not run" or "n/f" (not found) in place of a side that is missing."""
    left = NOT_RUN if status == "not run" else f"{ours:.1f}" + (f" ± {std:.1f}" if seeds > 1 else "")
    right = NOT_FOUND if pd.isna(published) else f"{published:.1f}"
    diff = "" if status == "not run" or pd.isna(published) else f" ({ours - published:+.1f})"
    return f"{left} / {right}{diff}"


def paper_table(compared: pd.DataFrame, dataset: str, backbone: str, direction: str, dsl: str = "no"
                ) -> pd.DataFrame:
    """One of the paper's tables: a row per model, a cell per metric "ours / published (difference)",
    and the source of the published numbers (its `table` column after a comma)."""
    part = compared[(compared.dataset == dataset) & (compared.backbone == backbone)
                    & (compared.direction == direction) & (compared.dsl == dsl)]
    rows = []
    for _, r in part.iterrows():
        row = {"model": r.model}
        for metric in METRICS:
            row[METRIC_NAMES[metric]] = cell(r[metric], r.get(f"{metric}_std", math.nan), r.seeds,
                                             r[f"{metric}_paper"], r.status)
        row["source"] = f"{r.source}, {r.table}" if isinstance(r.source, str) else "not published"
        rows.append(row)
    return pd.DataFrame(rows)


def other_runs_table(experiments: list[Experiment], synthetic: bool) -> pd.DataFrame:
    """The runs with no published counterpart: the synthetic demo (synthetic=True), or the other runs of
    real data sets (other teachers, the coarse-only ablation); mean ± std over seeds."""
    ours = our_numbers(experiments)
    if ours.empty:
        return ours
    ours = ours[(ours.dataset == "synthetic") == synthetic]
    if not synthetic:
        ours = ours[ours.model.isna()]
    rows = []
    for _, r in ours.iterrows():
        row = {"exp": r.exp, "model": r.label, "direction": r.direction,
               "inference": "DSL" if r.dsl == "yes" else "plain"}
        for metric in METRICS:
            row[METRIC_NAMES[metric]] = f"{r[metric]:.1f} ± {r[f'{metric}_std']:.1f}"
        row["seeds"] = r.seeds
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    return "(none)" if table.empty else markdown_rows(table)


def with_footnotes(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The table with its source column as [1], [2], ... and the sources as lines under it."""
    sources = list(dict.fromkeys(s for s in table.source if s != "not published"))
    table = table.assign(source=[f"[{sources.index(s) + 1}]" if s in sources else s for s in table.source])
    return table, "\n".join(f"[{i}] {s}  " for i, s in enumerate(sources, 1))


def write_tables(experiments: list[Experiment], published: pd.DataFrame, out_dir: str | Path) -> Path:
    """comparison.csv (every cell, long form) and tables.md (the paper's tables, then the other runs,
    then the demo's) in `out_dir`; returns the path of tables.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compared = comparison(experiments, published)
    write_text(out_dir / "comparison.csv", compared.to_csv(index=False))
    parts = ["# Reproduced against published\n\nEach cell: ours (mean ± std over seeds) / published "
             f"(ours - published). `{NOT_RUN}`: no finished evaluation of that experiment; `{NOT_FOUND}`: "
             "the number was not found in the source (see results/paper_numbers.csv). A published SumR is the "
             "sum of the published R@1, R@5 and R@10 where the source gives no SumR of its own."]
    groups = compared[["dataset", "backbone", "dsl", "direction"]].drop_duplicates()
    groups = groups.sort_values(["dataset", "backbone", "dsl", "direction"], key=_paper_order)
    for dataset, backbone, dsl, direction in groups.itertuples(index=False):
        label = " with dual-softmax inference (DSL)" if dsl == "yes" else ""
        table, notes = with_footnotes(paper_table(compared, dataset, backbone, direction, dsl))
        parts.append(f"## {DATASETS.get(dataset, dataset)}, {backbone}, {DIRECTIONS[direction]}{label}\n\n"
                     + markdown(table) + "\n\n" + notes)
    parts.append("## Other runs of real data sets (no published counterpart)\n\n"
                 + markdown(other_runs_table(experiments, synthetic=False)))
    parts.append("## Demo: synthetic data (not comparable with any published number)\n\n"
                 + markdown(other_runs_table(experiments, synthetic=True)))
    path = out_dir / "tables.md"
    write_text(path, "\n\n".join(parts) + "\n")
    return path
