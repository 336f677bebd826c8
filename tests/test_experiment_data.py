"""The data stage (tclib.experiment.data) on the small demo: the frame sources it builds, the ground truth,
the split summary."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from tclib import analysis
from tclib.experiment import data as experiment_data
from tclib.experiment.data import prepare_data, sampling_of
from tclib.params import load_params


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

def test_ground_truth_relevance_sums_to_one(demo_run):
    _, params = demo_run
    truth, kinds = analysis.ground_truth(params.data_root, sampling_of(params))
    assert len(truth) == len(json.loads((Path(params.data_root) / "relevance.json").read_text()))
    for (video_id, _), relevance in truth.items():
        assert relevance.sum() == pytest.approx(1.0)
        assert set(kinds[video_id][relevance > 0]) <= {"scene0", "scene1"}  # relevant frames show a key scene

def test_data_summary_counts_the_small_demo(demo_run):
    _, P = demo_run
    from tclib import notebook

    summary = notebook.data_summary(P, prepare_data(P))
    # 16 training videos with 4 captions each, 8 test videos with one (the 1k-A layout), none failed
    assert summary.loc[["train", "test", "failed to decode"], ["videos", "captions"]].values.tolist() == [
        [16, 64], [8, 8], [0, 0]]
    low, mean, high = summary.loc["train", "frames per video (min/mean/max)"].split("/")
    assert 10 <= int(low) <= float(mean) <= int(high) == P.max_frames  # demo videos last 10-14 s, 12 frames kept
