"""Statistics of frame weights against the synthetic ground truth, by hand."""

import numpy as np
import pytest

from tclib.analysis import attention_statistics, pearson


def test_pearson_by_hand():
    # [0.5, 0.5, 0] vs [1, 0, 0]: centred [1/6, 1/6, -1/3] and [2/3, -1/3, -1/3];
    # dot 1/6, norms sqrt(1/6) and sqrt(2/3) -> (1/6) / (1/3) = 0.5
    assert pearson([0.5, 0.5, 0.0], [1.0, 0.0, 0.0]) == pytest.approx(0.5)
    assert np.isnan(pearson([1.0, 1.0], [0.0, 1.0]))


def test_attention_statistics_by_hand():
    weights = np.array([[0.5, 0.5, 0.0, 0.0], [0.92, 0.0, 0.08, 0.0]])
    relevance = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    kinds = np.array([["scene0", "scene1", "noise", "padding"], ["scene0", "scene0", "scene1", "padding"]])
    stats = attention_statistics(weights, relevance, kinds)
    # row 2 (padding dropped): centred w [0.58667, -0.33333, -0.25333], r [1/6, 1/6, -1/3];
    # dot 0.126667, norms 0.720741 and 0.408248 -> 0.430480; mean with row 1's 0.5 -> 0.465240
    assert stats["pearson_with_ground_truth"] == pytest.approx(0.465240, abs=1e-5)
    assert stats["max_weight"] == pytest.approx((0.5 + 0.92) / 2)
    assert stats["key_scene_mass"] == pytest.approx(1.0)  # all weight on the two scenes in both rows
    assert stats["missing_scene_pct"] == pytest.approx(50.0)  # row 2 gives scene1 only 0.08
