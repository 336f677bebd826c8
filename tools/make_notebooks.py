"""Write notebooks/*.ipynb: a papermill parameters cell generated from tclib.params.Params, then the
stage's calls into tclib. Run after changing the params schema: `python tools/make_notebooks.py`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tclib.params import Params

SETUP = """\
from IPython.display import Image, Markdown, display

from tclib import pipeline
from tclib.params import Params

pipeline.setup_logging()
P = Params.from_mapping({k: globals()[k] for k in Params.field_names()}, source="notebook parameters")
data = pipeline.prepare_data(P)  # done by 01_data_prep; later notebooks find it cached"""

NOTEBOOKS = {
    "01_data_prep": ("# 01 · Data preparation\n"
                     "Annotations (MSR-VTT layout), the frame cache (each video decoded once), and — for the demo — "
                     "the synthetic data set and the backbone pretrained on synthetic image-caption pairs.", [
        "display(pipeline.data_summary(P, data))",
        "pipeline.show_sample_video(P, data, index=0)",
    ]),
    "02_teacher_scoring": ("# 02 · Teacher scoring\n"
                           "Each teacher (X-CLIP, TS2-Net, X-Pool) is loaded from its checkpoint (`teacher_checkpoints`,"
                           " the released files in TeachCLIP's layout) or trained here. With `teacher_mode: cached` its"
                           " text and video features on the training set are then cached (float16, memory-mapped), so "
                           "that student training scores every batch without running the teachers' towers; "
                           "`teacher_mode: online` runs the teachers on every batch instead, as the reference does.", [
        "teachers = pipeline.prepare_teachers(P, data)\ndisplay(pipeline.teacher_summary(P, teachers))",
        "pipeline.plot_training_curves(P, data, kind=\"teachers\")",
    ]),
    "03_train_student": ("# 03 · Student training\n"
                         "CLIP4Clip baselines (meanP, seqTransf) and TeachCLIP students (coarse-grained teaching only, "
                         "coarse + fine-grained), one run per seed; `teachclip:xclip+ts2net` names the teachers of a "
                         "run (default: all of `teachers`, averaged as the reference does). Runs given in "
                         "`student_checkpoints` (a file of tclib's or of the reference code) are evaluated, not "
                         "trained.", [
        "pipeline.train_students(P, data)",
        "pipeline.plot_training_curves(P, data, kind=\"students\")",
    ]),
    "04_evaluate": ("# 04 · Evaluation\n"
                    "Text-to-video and video-to-text retrieval on the test split; `metrics.csv` has one row per model "
                    "and seed, `table.md` the mean ± std over seeds.", [
        "metrics = pipeline.evaluate_all(P, data)\ndisplay(Markdown((P.exp_dir / \"table.md\").read_text()))",
        "display(metrics)",
    ]),
    "05_attention_plots": ("# 05 · AFA attention against teacher relevance\n"
                           "For sample test videos: AFA's aggregation weights with and without fine-grained teaching, "
                           "the teacher's frame-text relevance, and the ground truth where the data set has it.", [
        "correlation = pipeline.attention_report(P, data)\ndisplay(correlation)",
        "display(Image(filename=str(P.exp_dir / \"attention.png\")))",
    ]),
}


def code(source: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": "code", "execution_count": None, "id": "", "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}
    if tags:
        cell["metadata"]["tags"] = tags
    return cell


def parameters_source() -> str:
    lines = ["# Parameters (papermill). Every key of params/*.yaml; meanings in tclib/params.py."]
    for f in dataclasses.fields(Params):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        lines.append(f"{f.name} = {default!r}")
    return "\n".join(lines)


def notebook(name: str, title: str, cells: list[str]) -> dict:
    all_cells = [{"cell_type": "markdown", "id": "", "metadata": {}, "source": title.splitlines(keepends=True)},
                 code(parameters_source(), ["parameters"]), code(SETUP)] + [code(c) for c in cells]
    for i, cell in enumerate(all_cells):
        cell["id"] = f"{name[:2]}-{i}"
    return {
        "cells": all_cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "notebooks"
    out.mkdir(exist_ok=True)
    for name, (title, cells) in NOTEBOOKS.items():
        (out / f"{name}.ipynb").write_text(json.dumps(notebook(name, title, cells), indent=1) + "\n")


if __name__ == "__main__":
    main()
