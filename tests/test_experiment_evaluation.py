"""Evaluation and the attention report (tclib.experiment.evaluation, .attention) on the small demo."""


import numpy as np
import pandas as pd
from conftest import ROOT

from tclib.experiment.attention import attention_report
from tclib.experiment.data import prepare_data
from tclib.experiment.evaluation import evaluate_all
from tclib.params import load_params

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

def test_attention_outputs(demo_run):
    exp_dir, _ = demo_run
    assert (exp_dir / "attention.png").stat().st_size > 10_000
    stats = pd.read_csv(exp_dir / "attention_correlation.csv")
    assert set(stats["weights"]) == {"TeachCLIP coarse only (X-CLIP) AFA", "TeachCLIP (X-CLIP) AFA",
                                     "TeachCLIP (X-CLIP + TS2-Net) AFA", "X-CLIP (teacher) relevance",
                                     "TS2-Net (teacher) relevance", "X-Pool (teacher) relevance"}
    assert stats["pearson_with_ground_truth"].between(-1, 1).all()
    assert stats["key_scene_mass"].between(0, 1).all() and stats["missing_scene_pct"].between(0, 100).all()

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
