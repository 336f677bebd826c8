"""The executed notebooks of the small demo (`tclib reproduce` over notebooks/): every one ran, shows its
figures inline and no error, logs a few lines, runs again where it lies; and the committed notebooks
are what tools/make_notebooks.py writes."""

import json
import os
from pathlib import Path

import pandas as pd
from conftest import ROOT


def test_all_notebooks_executed(demo_run):
    exp_dir, _ = demo_run
    executed = sorted(p.name for p in (exp_dir / "notebooks").glob("*.ipynb"))
    experiment = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb") if p.name != "07_paper_tables.ipynb")
    assert executed == experiment  # 07 reads every experiment: `tclib tables` runs it
    for path in (exp_dir / "notebooks").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        assert any(c.get("outputs") for c in cells if c["cell_type"] == "code"), path.name

def outputs_of(path: Path) -> list[tuple[dict, list[dict]]]:
    return [(c, c.get("outputs", [])) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]

def test_executed_notebooks_show_every_figure_inline_and_no_error(demo_run):
    exp_dir, _ = demo_run
    figures = 0
    for path in sorted((exp_dir / "notebooks").glob("*.ipynb")):
        for cell, outputs in outputs_of(path):
            assert not [o for o in outputs if o["output_type"] == "error"], path.name
            assert not [o for o in outputs if o.get("name") == "stderr"], f"{path.name}: log lines shown as errors"
            if "figure" in cell["metadata"].get("tags", []):
                figures += 1
                assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: {cell['source']}"
    assert figures == 14  # 01: 1, 02: 3, 03: 2, 04: 1, 05: 1, 06: 3, 08: 3

def test_batch_runs_record_progress_in_a_few_lines(demo_run):
    """No progress-bar redraws in the executed notebooks: a handful of log lines per notebook."""
    exp_dir, _ = demo_run
    for path in sorted((exp_dir / "notebooks").glob("*.ipynb")):
        streams = [o for _, outputs in outputs_of(path) for o in outputs if o["output_type"] == "stream"]
        lines = sum("".join(o["text"]).count("\n") for o in streams)
        assert len(streams) <= 40 and lines <= 60, f"{path.name}: {len(streams)} stream outputs, {lines} lines"
        assert not any("\r" in "".join(o["text"]) for o in streams), path.name

def files_under(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}

def test_an_executed_notebook_runs_again_where_it_lies(demo_run):
    """As JupyterLab runs it: the kernel in the notebook's folder, no environment from tclib. It finds
    every stage done (nothing trained, nothing rewritten) and writes only to results/<exp>/scratch/."""
    import papermill

    exp_dir, _ = demo_run
    project = exp_dir.parent.parent
    before = files_under(project)
    folder = exp_dir / "notebooks"
    for name in ("03_train_student.ipynb", "05_attention_plots.ipynb"):
        papermill.execute_notebook(str(folder / name), str(project.parent / f"rerun-{name}"), cwd=str(folder),
                                   kernel_name="python3", progress_bar=False)
    after = files_under(project)
    changed = sorted(p.relative_to(project) for p in after if before.get(p) != after[p])
    assert changed == [Path("results/small/scratch/attention.png"),
                       Path("results/small/scratch/attention_correlation.csv")]
    assert (exp_dir / "scratch" / "attention_correlation.csv").read_text() == \
        (exp_dir / "attention_correlation.csv").read_text()

def test_tables_put_the_demo_apart_and_every_published_row_beside_not_run(demo_run):
    from tclib.cli import tables

    exp_dir, _ = demo_run
    project = exp_dir.parent.parent
    before = Path.cwd()
    os.chdir(project / "notebooks")  # from any folder: paths resolve against the project root
    try:
        out = tables(Path("notebooks"))  # relative to the project root, not to the working folder
    finally:
        os.chdir(before)
    assert out == project / "results" / "tables"
    executed = json.loads((out / "notebooks" / "07_paper_tables.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if o["output_type"] == "error" or o.get("name") == "stderr"]
    text = (out / "tables.md").read_text()
    paper, demo = text.split("## Demo: synthetic data")
    assert "| TeachCLIP | not run / 46.8 | not run / 74.3 | not run / 82.6 |" in paper
    metrics = pd.read_csv(exp_dir / "metrics.csv")
    teachclip = metrics[metrics.model == "TeachCLIP (X-CLIP + TS2-Net)"]
    mean, std = teachclip.t2v_R1.mean(), teachclip.t2v_R1.std(ddof=0)
    assert f"| small | TeachCLIP (X-CLIP + TS2-Net) | t2v | plain | {mean:.1f} ± {std:.1f} |" in demo
    assert "small" not in paper


def test_the_committed_notebooks_are_what_make_notebooks_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "tools" / "make_notebooks.py")
    make_notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_notebooks)
    texts = make_notebooks.notebook_texts()
    assert sorted(texts) == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for name, text in texts.items():
        assert (ROOT / "notebooks" / name).read_text() == text, f"{name}: run `make notebooks`"


def test_a_notebook_refuses_a_device_this_machine_cannot_run(tmp_path, gpus_here):
    import pytest

    from tclib.errors import ParamsError
    from tclib.notebook import notebook_params

    gpus_here(2)
    params = tmp_path / "two.yaml"
    params.write_text("exp: two\ndevice: 'cuda:1'\ngpus: 2\nbatch_size: 8\n")
    with pytest.raises(ParamsError, match=r"two.yaml: params key 'device'.*cuda:1"):
        notebook_params(str(params), {})
    params.write_text("exp: two\ndevice: cuda\ngpus: 2\nbatch_size: 8\n")
    assert notebook_params(str(params), {}).gpus == 2  # each process on the GPU of its local rank
