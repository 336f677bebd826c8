"""The whole pipeline, end to end: the six notebooks run by papermill on a very small demo."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tclib import analysis
from tclib.experiment import students, teachers
from tclib.experiment.attention import attention_report
from tclib.experiment import data as experiment_data
from tclib.experiment.data import prepare_data, sampling_of
from tclib.experiment.evaluation import evaluate_all
from tclib.experiment.plan import stage_plan
from tclib.experiment.students import (launch_student_training, load_student, new_student, student_seeds,
                                       student_stage, train_student, train_students)
from tclib.experiment.teachers import prepare_teachers
from tclib.params import load_params

from conftest import ROOT


def test_all_notebooks_executed(demo_run):
    exp_dir, _ = demo_run
    executed = sorted(p.name for p in (exp_dir / "notebooks").glob("*.ipynb"))
    experiment = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb") if p.name != "07_paper_tables.ipynb")
    assert executed == experiment  # 07 reads every experiment: `tclib tables` runs it
    for path in (exp_dir / "notebooks").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        assert any(c.get("outputs") for c in cells if c["cell_type"] == "code"), path.name


MODELS = ["CLIP4Clip (meanP)", "CLIP4Clip (seqTransf)", "X-CLIP (teacher)", "TS2-Net (teacher)", "X-Pool (teacher)",
          "TeachCLIP coarse only (X-CLIP)", "TeachCLIP (X-CLIP)", "TeachCLIP (X-CLIP + TS2-Net)"]


def test_metrics_and_table(demo_run):
    exp_dir, _ = demo_run
    metrics = pd.read_csv(exp_dir / "metrics.csv")
    assert list(dict.fromkeys(metrics["model"])) == MODELS
    assert len(metrics) == len(MODELS) * 2  # two seeds each
    assert metrics["t2v_R1"].between(0, 100).all() and (metrics["t2v_R10"] >= metrics["t2v_R1"]).all()
    # a student stores one vector per video; X-CLIP keeps the frames too
    student = metrics[metrics.run == "teachclip:xclip+ts2net"].floats_per_video.iloc[0]
    teacher = metrics[metrics.run == "xclip"].floats_per_video.iloc[0]
    assert teacher > student * 10
    assert set(metrics["inference"]) == {"plain"}  # dual-softmax only when asked for
    assert (metrics["t2v_SumR"] == metrics[["t2v_R1", "t2v_R5", "t2v_R10"]].sum(axis=1)).all()
    table = (exp_dir / "table.md").read_text()
    for model in MODELS:
        assert f"| {model} |" in table
    assert "±" in table and "| SumR |" in table and "dual-softmax" not in table


def test_dual_softmax_rows_are_labelled_and_leave_the_default_numbers_alone(demo_run, tmp_path):
    exp_dir, params = demo_run
    with_dsl = load_params(ROOT / "params" / "demo.yaml", {**params.to_dict(), "dsl": True})
    metrics = evaluate_all(with_dsl, prepare_data(with_dsl), tmp_path)
    plain, dsl = metrics[metrics.inference == "plain"], metrics[metrics.inference == "dsl"]
    assert len(plain) == len(dsl) == len(MODELS) * 2
    published = pd.read_csv(exp_dir / "metrics.csv")
    columns = [c for c in published.columns if c.startswith(("t2v_", "v2t_"))]
    np.testing.assert_allclose(plain[columns].to_numpy(), published[columns].to_numpy())
    assert not np.allclose(dsl[columns].to_numpy(), plain[columns].to_numpy())
    tables = (tmp_path / "table.md").read_text().split("\n\n")
    headers = [t for t in tables if "retrieval on" in t]
    assert len(headers) == 4 and ["DSL" in h for h in headers] == [False, False, True, True]


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


def test_attention_outputs(demo_run):
    exp_dir, _ = demo_run
    assert (exp_dir / "attention.png").stat().st_size > 10_000
    stats = pd.read_csv(exp_dir / "attention_correlation.csv")
    assert set(stats["weights"]) == {"TeachCLIP coarse only (X-CLIP) AFA", "TeachCLIP (X-CLIP) AFA",
                                     "TeachCLIP (X-CLIP + TS2-Net) AFA", "X-CLIP (teacher) relevance",
                                     "TS2-Net (teacher) relevance", "X-Pool (teacher) relevance"}
    assert stats["pearson_with_ground_truth"].between(-1, 1).all()
    assert stats["key_scene_mass"].between(0, 1).all() and stats["missing_scene_pct"].between(0, 100).all()


def test_rerun_skips_finished_stages(demo_run, monkeypatch):
    _, params = demo_run

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for stage in (teachers, students):
        monkeypatch.setattr(stage, "train", no_training)
    data = prepare_data(params)
    prepare_teachers(params, data)
    train_students(params, data)


def test_ground_truth_relevance_sums_to_one(demo_run):
    _, params = demo_run
    truth, kinds = analysis.ground_truth(params.data_root, sampling_of(params))
    assert len(truth) == len(json.loads((Path(params.data_root) / "relevance.json").read_text()))
    for (video_id, _), relevance in truth.items():
        assert relevance.sum() == pytest.approx(1.0)
        assert set(kinds[video_id][relevance > 0]) <= {"scene0", "scene1"}  # relevant frames show a key scene


def test_decoding_on_the_fly_gives_the_cached_frames(demo_run):
    _, params = demo_run
    cached = experiment_data.test_set(params, prepare_data(params))
    on_the_fly = load_params(ROOT / "params" / "demo.yaml", {**params.to_dict(), "frame_cache": False})
    decoded = experiment_data.test_set(on_the_fly, prepare_data(on_the_fly))
    assert decoded.video_ids == cached.video_ids
    for name in ("frames", "mask"):
        a, b = (np.asarray(getattr(t, name)[t.source_rows()]) for t in (decoded, cached))
        np.testing.assert_array_equal(a, b)


def test_a_jpeg_frame_cache_is_built_beside_the_raw_one_and_reads_the_same_videos(demo_run):
    _, params = demo_run
    raw_data = prepare_data(params)
    jpeg = load_params(ROOT / "params" / "demo.yaml", {**params.to_dict(), "frame_cache_format": "jpeg", "exp": "small-jpeg"})
    jpeg_data = prepare_data(jpeg)
    assert jpeg_data.cache.cache_dir != raw_data.cache.cache_dir and raw_data.cache.complete  # both kept
    assert jpeg_data.cache.params["storage"] == "jpeg" and jpeg_data.cache.params["jpeg_quality"] == 90
    raw_test, jpeg_test = experiment_data.test_set(params, raw_data), experiment_data.test_set(jpeg, jpeg_data)
    assert jpeg_test.video_ids == raw_test.video_ids
    a, b = (np.asarray(t.frames[t.source_rows()], dtype=np.int16) for t in (raw_test, jpeg_test))
    assert 0 < np.abs(a - b).mean() < 3.0  # lossy, a few grey levels at most on average


def test_a_student_saved_by_the_reference_code_is_evaluated_without_training(demo_run, tmp_path, monkeypatch):
    """student_checkpoints: a file in the reference's key layout (here: a trained student's weights
    renamed as TeachCLIP's save_model writes them) is evaluated as it is, and gives the same metrics."""
    from tclib.evaluate import evaluate
    from tclib.train import resolve_device

    _, params = demo_run
    run = "teachclip:xclip+ts2net"
    reference_names = {"temporal.frame_position_embeddings.": "frame_position_embeddings.",
                       "temporal.transformer.": "transformerClip.", "afa.fc1.": "frameLinear.",
                       "afa.fc2.": "frameLinear2."}
    state = {}
    trained = student_stage(params, prepare_data(params), run, 0).directory / "run" / "model.pt"
    for key, value in torch.load(trained).items():
        prefix = next((p for p in reference_names if key.startswith(p)), "")
        state["module." + (reference_names[prefix] + key[len(prefix):] if prefix else key)] = value
    torch.save(state, tmp_path / "pytorch_model.bin.9")
    given = load_params(ROOT / "params" / "demo.yaml",
                        {**params.to_dict(), "student_checkpoints": {run: str(tmp_path / "pytorch_model.bin.9")}})

    for stage in (teachers, students):
        monkeypatch.setattr(stage, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    data = prepare_data(given)
    train_students(given, data)  # nothing to train: every other run is done, this one is given
    test = experiment_data.test_set(given, data)
    device = resolve_device("cpu")
    assert student_seeds(given, run) == [None]
    ours = evaluate(load_student(params, data, run, 0), test, 50, device)
    theirs = evaluate(load_student(given, data, run, None), test, 50, device)
    for key in ours:
        if key != "score_seconds":
            assert theirs[key] == ours[key], key


def test_new_student_epochs_train_only_the_trainable_students_and_clean_removes_them(demo_run, tmp_path,
                                                                                     monkeypatch):
    """A changed `epochs` reruns the students that train (not the teachers, not the frozen meanP
    student) in new folders beside the finished ones; `tclib clean` with the original params file
    removes the new folders again and keeps every folder the original run reads."""
    import yaml

    from tclib.clean import clean

    _, params = demo_run
    trained = []
    for stage in (teachers, students):
        monkeypatch.setattr(stage, "train",
                            lambda model, dataset, objective, config, out_dir, desc: trained.append(desc))
    more_epochs = load_params(ROOT / "params" / "demo.yaml", {**params.to_dict(), "epochs": params.epochs + 1})
    data = prepare_data(more_epochs)
    finished = stage_plan(params, data)
    prepare_teachers(more_epochs, data)
    train_students(more_epochs, data)
    trainable = ["clip4clip-seqTransf", "teachclip-coarse:xclip", "teachclip:xclip", "teachclip:xclip+ts2net"]
    assert sorted(trained) == sorted(f"{run} seed {seed}" for run in trainable for seed in params.seeds)
    records = {"frames": "manifest.json", "teacher-features": "manifest.json"}  # the others: stage.json

    def intact(plan):
        return all((folder / records.get(key.split("/")[0], "stage.json")).is_file() for key, folder in plan.items())

    assert intact(finished)  # nothing deleted

    original = tmp_path / "small.yaml"
    original.write_text(yaml.safe_dump(params.to_dict()))
    new_folders = set(stage_plan(more_epochs, data).values()) - set(finished.values())
    assert len(new_folders) == len(trained)
    listed = clean([original], dry_run=True)
    assert {folder for folder, _ in listed.removed} == {f.resolve() for f in new_folders}
    assert all(folder.exists() for folder in new_folders)  # a dry run removes nothing
    report = clean([original])
    assert report.freed > 0 and not any(folder.exists() for folder in new_folders)
    assert intact(finished)
    assert clean([original]).removed == []


# ------------------------------------------------------------------------- the executed notebooks

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
    assert figures == 10  # 01: 1, 02: 3, 03: 1, 04: 1, 05: 1, 06: 3


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


# --------------------------------------------------------------------------------------- explorer

@pytest.fixture(scope="module")
def explorer(demo_run):
    from tclib.explore import Explorer

    _, params = demo_run
    return Explorer(params, prepare_data(params), device="cpu")


def test_explorer_ranks_a_test_caption_as_the_evaluation_does(demo_run, explorer):
    exp_dir, _ = demo_run
    ranks = pd.read_csv(exp_dir / "ranks.csv")
    captions = explorer.captions
    for i in range(len(captions)):
        if captions.count(captions[i]) > 1:
            continue
        table = explorer.rank(captions[i], k=3)
        assert len(table) == 3 * len(explorer.models)
        for model, group in table.groupby("model"):
            expected = ranks[(ranks.model == model) & (ranks.seed == 0) & (ranks.caption == i)]["rank"].item()
            assert group.correct_rank.iloc[0] == expected, (model, i)
            assert group.correct.any() == (expected <= 3)
            assert list(group.place) == [1, 2, 3] and group.score.is_monotonic_decreasing


def test_explorer_takes_any_query_text(explorer):
    query = "a green square in front of a white backdrop"
    assert query not in explorer.captions
    table = explorer.rank(query, k=5)
    assert len(table) == 5 * len(explorer.models) and not table.correct.any() and table.correct_rank.isna().all()
    assert explorer.ranking_figure(query, k=5).axes


def test_explorer_attention_of_a_video_for_two_captions(explorer):
    video_id = explorer.video_ids[0]
    own = explorer.data.test.caption[explorer.data.test.clip_id == video_id].iloc[0]
    mine = explorer.attention(video_id, own)
    other = explorer.attention(video_id, "a green square in front of a white backdrop")
    afa = [label for label in mine.index if label.endswith(" AFA")]
    teachers = [label for label in mine.index if label.endswith(" relevance")]
    assert len(afa) == 3 and len(teachers) == 3 and "ground truth" in mine.index and "ground truth" not in other.index
    np.testing.assert_allclose(mine.loc[afa + teachers].sum(axis=1), 1.0, atol=1e-5)
    pd.testing.assert_frame_equal(mine.loc[afa], other.loc[afa])  # AFA never sees the caption
    assert not np.allclose(mine.loc[teachers[0]], other.loc[teachers[0]])  # a teacher's relevance does
    with pytest.raises(KeyError, match="not a test video"):
        explorer.attention("no-such-video", own)


def test_explorer_widget_follows_the_query(explorer):
    box = explorer.widget(k=3)
    pick, query, video = box.children[0], box.children[1], box.children[4]
    first_student = next(iter(explorer.models))
    # a text of one's own: the first model's best video is shown
    text = "a red circle moving across a dark background"
    query.value = text
    assert video.value == explorer.rank(text, 1).query("model == @first_student").video_id.item()
    # a test caption picked from the list: its own video
    caption = explorer.captions[-1]
    pick.value = caption
    assert query.value == caption and video.value == explorer.correct_video(caption)


def test_data_summary_counts_the_small_demo(demo_run):
    _, P = demo_run
    from tclib import notebook

    summary = notebook.data_summary(P, prepare_data(P))
    # 16 training videos with 4 captions each, 8 test videos with one (the 1k-A layout), none failed
    assert summary.loc[["train", "test", "failed to decode"], ["videos", "captions"]].values.tolist() == [
        [16, 64], [8, 8], [0, 0]]
    low, mean, high = summary.loc["train", "frames per video (min/mean/max)"].split("/")
    assert 10 <= int(low) <= float(mean) <= int(high) == P.max_frames  # demo videos last 10-14 s, 12 frames kept


def test_evaluation_attention_and_explorer_read_frames_a_batch_at_a_time(demo_run, tmp_path, monkeypatch):
    """Memory is bounded by the batch: no pass over the test set gathers more than eval_batch_size
    videos' frames from the cache at once (the small demo has 8 test videos; batches of 3)."""
    import dataclasses

    from tclib.data.rows import RowView
    from tclib.explore import Explorer

    _, params = demo_run
    P = dataclasses.replace(params, eval_batch_size=3)
    data = prepare_data(P)
    reads: list[int] = []
    cache = data.cache

    def counted(rows):
        reads.append(len(rows))
        return cache.frames_of(rows)

    # every pass reads the frames through the source's view: one that counts the videos of each read
    cache.frames = RowView(len(cache), cache.frames.shape[1:], np.uint8, counted, lambda row: counted([row])[0],
                           "counted frames")
    evaluate_all(P, data, tmp_path)
    attention_report(P, data, tmp_path)
    explorer = Explorer(P, data, device="cpu")
    explorer.rank("a red circle", k=3)
    explorer.attention(explorer.video_ids[0], "a red circle")
    assert reads and max(reads) <= 3
    assert sum(reads) >= 8  # the test set was read, in batches


def test_a_student_trained_over_two_processes_equals_one_trained_in_one(demo_run, tmp_path):
    """gpus: 2 launches torchrun (gloo on CPUs): the same global batches, the gathered negatives and
    averaged gradients give the weights one process gives, up to float rounding."""
    import dataclasses

    from tclib.models.checkpoint import read_checkpoint

    _, params = demo_run
    P = dataclasses.replace(params, gpus=2, epochs=1, batch_size=8, runs=["teachclip:xclip"])
    data = prepare_data(P)
    train_student(P, data, "teachclip:xclip", 0, tmp_path / "one")
    launch_student_training(P, "teachclip:xclip", 0, tmp_path / "two")
    one, two = (read_checkpoint(tmp_path / name / "run" / "model.pt") for name in ("one", "two"))
    assert one.keys() == two.keys()
    for key in one:
        # AFA's last bias shifts every frame's logit alike, so the softmax gives it a zero gradient:
        # what it gets is rounding noise, which Adam scales up to about 1e-5 a step
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-4, msg=key)
    start = new_student(P, data, "teachclip:xclip").state_dict()
    changed = sum(not torch.equal(start[k], one[k]) for k in one)
    assert changed > 10  # the run trained (8 steps of 8 pairs)
    assert json.loads((tmp_path / "two" / "run" / "history.json").read_text())["epoch_loss"]
