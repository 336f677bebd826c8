"""Figure builders: framed thumbnails, one colour scale across heatmap panels, no global pyplot state."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from tclib import plots


def frames(n, value=0, size=4):
    return np.full((n, 3, size, size), value, dtype=np.uint8)


def test_framed_strip_puts_a_grey_frame_around_each_thumbnail():
    strip = plots.framed_strip(frames(3, value=0), count=2)
    b = plots.BORDER
    assert strip.shape == (4 + 2 * b, 2 * (4 + 2 * b), 3)
    assert (strip[0] == plots.BORDER_GREY).all() and (strip[:, 0] == plots.BORDER_GREY).all()
    # between the two thumbnails: two borders of grey, so black frames never touch
    assert (strip[b:-b, 4 + b: 4 + 3 * b] == plots.BORDER_GREY).all()
    assert (strip[b:-b, b:4 + b] == 0).all()


@pytest.mark.parametrize("valid, expected", [(12, [0, 4, 7, 11]), (3, [0, 1, 2]), (1, [0])])
def test_thumbnail_strip_spreads_its_frames_over_the_valid_ones(valid, expected):
    video = np.stack([np.full((3, 4, 4), i, dtype=np.uint8) for i in range(12)])
    mask = np.arange(12) < valid
    strip = plots.thumbnail_strip(video, mask)
    b, w = plots.BORDER, 4 + 2 * plots.BORDER
    assert strip.shape[1] == w * len(expected)
    assert [int(strip[b, i * w + b, 0]) for i in range(len(expected))] == expected


def test_attention_panels_share_one_colour_scale_and_ignore_padded_slots():
    mask = np.array([1, 1, 1, 0], dtype=bool)
    videos = [
        {"frames": frames(4), "mask": mask, "caption": "a", "video_id": "v1",
         "rows": {"AFA": np.array([0.2, 0.3, 0.5, 0.0]), "truth": np.array([0.0, 0.0, 1.0, 9.0])}},
        {"frames": frames(4), "mask": np.ones(4, bool), "caption": "b",
         "rows": {"AFA": np.array([0.1, 0.7, 0.1, 0.1]), "truth": np.array([0.25] * 4)}},
    ]
    backend = matplotlib.get_backend()
    fig = plots.attention_figure(videos, seed=3)
    from matplotlib.collections import QuadMesh
    colour_bars = [ax for ax in fig.axes if ax.get_ylabel() == "weight on the frame"]
    heatmaps = [c for ax in fig.axes if ax not in colour_bars for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(colour_bars) == 1
    assert len(heatmaps) == 2
    # 9.0 lies in a padded slot, so the shared maximum is the ground truth's 1.0
    assert all(h.get_clim() == (0.0, 1.0) for h in heatmaps)
    assert heatmaps[0].get_array().shape == (2, 3)  # two rows; the padded frame is not drawn
    assert "seed 3" in fig.get_suptitle() and "caption" in fig.get_suptitle()
    assert matplotlib.get_backend() == backend
    import matplotlib.pyplot as plt
    assert plt.get_fignums() == []  # a plain Figure, not one registered with pyplot


def test_training_log_figure_draws_one_row_per_run_and_one_panel_per_kind_of_scalar():
    rows = [("teachclip", s, n, v) for s in (1, 2, 3) for n, v in
            {"loss": 2.0, "loss/coarse": 1.0, "loss/fine": 0.5, "lr/clip": 1e-7, "lr/new": 1e-4,
             "samples_per_s": 80.0, "data_wait_share": 0.1, "gpu_memory_peak_gb": 3.5}.items()]
    rows += [("teachclip", 3, "epoch_loss", 1.8)] + [("meanP", s, "loss", 1.0) for s in (1, 2)]
    fig = plots.training_log_figure(pd.DataFrame(rows, columns=["run", "step", "name", "value"]), title="students")
    titles = ["loss", "learning rate", "samples/s", "share of the step waiting for data", "GPU memory peak (GB)"]
    assert [ax.get_title() for ax in fig.axes] == titles + [""] * 5
    assert [fig.axes[i].get_ylabel() for i in (0, 5)] == ["teachclip", "meanP"]
    loss = fig.axes[0]
    assert [line.get_label() for line in loss.lines] == ["loss", "loss/coarse", "loss/fine", "epoch_loss"]
    assert list(loss.lines[-1].get_xdata()) == [3]
    assert [line.get_label() for line in fig.axes[1].lines] == ["lr/clip", "lr/new"]
    assert fig.axes[3].get_ylim() == (0, 1)
    assert [line.get_label() for line in fig.axes[5].lines] == ["loss"] and not fig.axes[6].lines
    assert fig.get_suptitle() == "students"


def test_training_log_figure_of_one_run_without_a_run_column():
    frame = pd.DataFrame({"step": [1, 2], "name": ["loss", "loss"], "value": [2.0, 1.0]})
    fig = plots.training_log_figure(frame)
    assert [ax.get_title() for ax in fig.axes] == ["loss"] and len(fig.axes[0].lines) == 1
    assert isinstance(plots.training_log_figure(frame.iloc[:0]), plots.Figure)
