"""04 · Evaluation: every trained model and seed on the test split, each model's features extracted
once -> results/<exp>/metrics.csv, table.md and ranks.csv."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import correct_ranks
from ..evaluate import INFERENCES, metrics_of, similarity_matrix
from ..models import CLIP4Clip, Teacher
from ..params import Params
from ..train import resolve_device
from .data import Data, test_set
from .report import DIRECTIONS, markdown_table, sort_models, summary_table
from .runs import parse_run, teacher_label
from .students import load_student, student_seeds
from .teachers import load_teacher, prepared_teachers


def evaluate_all(P: Params, data: Data, out_dir: Path | None = None) -> pd.DataFrame:
    """Metrics of every trained model and seed, each model's features extracted once. Writes to
    `out_dir` (default results/<exp>/): metrics.csv (one row per model, seed and inference: "plain",
    and "dsl" when P.dsl), table.md (mean ± std over seeds of text->video R@1/5/10, MdR, MnR, SumR and
    the same for video->text; dual-softmax tables after them, labelled) and ranks.csv (the rank of each
    test caption's own video, per model and seed, plain inference)."""
    out_dir = Path(out_dir or P.exp_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(P.device)
    test = test_set(P, data)
    rows, ranks = [], []
    inferences = INFERENCES if P.dsl else ("plain",)
    for label, run, seed, load in models(P, data):
        sim, costs = similarity_matrix(load(), test, P.eval_batch_size, device)
        rows += [{"model": label, "run": run, "seed": seed, "inference": inference,
                  **metrics_of(sim, costs, test, inference)} for inference in inferences]
        ranks.append(pd.DataFrame({"model": label, "seed": seed, "caption": np.arange(len(sim)),
                                   "video_id": [test.video_ids[v] for v in test.caption_video],
                                   "rank": correct_ranks(sim, test.caption_video)}))
    metrics = sort_models(pd.DataFrame(rows), P)
    metrics.to_csv(out_dir / "metrics.csv", index=False)
    tables = [markdown_table(summary_table(metrics[metrics.inference == inference], direction), P, direction,
                             inference) for inference in inferences for direction in DIRECTIONS]
    (out_dir / "table.md").write_text("\n\n".join(tables) + "\n")
    pd.concat(ranks, ignore_index=True).to_csv(out_dir / "ranks.csv", index=False)
    return metrics


def models(P: Params, data: Data) -> list[tuple[str, str, int | None, Callable[[], CLIP4Clip | Teacher]]]:
    """(label, run or teacher, seed, loader) of every student run and seed, then every teacher and seed."""
    teachers = prepared_teachers(P, data)
    out: list[tuple[str, str, int | None, Callable[[], CLIP4Clip | Teacher]]] = [
        (parse_run(run).label, run, seed, partial(load_student, P, data, teachers, run, seed))
        for run in P.runs for seed in student_seeds(P, run)]
    out += [(teacher_label(name), name, seed, partial(load_teacher, P, data, teacher))
            for (name, seed), teacher in teachers.items()]
    return out
