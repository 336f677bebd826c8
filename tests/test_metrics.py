"""Tests of tclib.metrics against values worked out by hand."""

import numpy as np
import pytest
import torch

from tclib.metrics import (
    METRIC_KEYS,
    dual_softmax,
    query_ranks,
    retrieval_metrics,
    video_to_text_metrics,
)

# Correct items on the diagonal (marked *):
#   row 0: [*0.9, 0.1, 0.2, 0.3]  nothing above 0.9          -> rank 0
#   row 1: [0.8, *0.5, 0.1, 0.2]  0.8 above                  -> rank 1
#   row 2: [0.7, 0.6, *0.1, 0.4]  0.7, 0.6, 0.4 above        -> rank 3
#   row 3: [0.1, 0.2, 0.3, *0.9]  nothing above              -> rank 0
SIM_4X4 = np.array(
    [
        [0.9, 0.1, 0.2, 0.3],
        [0.8, 0.5, 0.1, 0.2],
        [0.7, 0.6, 0.1, 0.4],
        [0.1, 0.2, 0.3, 0.9],
    ]
)


def test_square_by_hand():
    # ranks 0, 1, 3, 0
    # R@1 = 2/4 = 50 %, R@5 = R@10 = R@50 = 4/4 = 100 %
    # MdR = median(0, 0, 1, 3) + 1 = (0 + 1)/2 + 1 = 1.5
    # MnR = (0 + 1 + 3 + 0)/4 + 1 = 2.0
    # SumR = R@1 + R@5 + R@10 = 50 + 100 + 100 = 250
    assert query_ranks(SIM_4X4).tolist() == [0, 1, 3, 0]
    m = retrieval_metrics(SIM_4X4)
    assert set(m) == set(METRIC_KEYS)
    assert m == {"R1": 50.0, "R5": 100.0, "R10": 100.0, "R50": 100.0, "MdR": 1.5, "MnR": 2.0, "SumR": 250.0}
    assert all(isinstance(v, float) for v in m.values())


def test_torch_input_same_as_numpy():
    m = retrieval_metrics(torch.tensor(SIM_4X4, dtype=torch.float32))
    assert m == {"R1": 50.0, "R5": 100.0, "R10": 100.0, "R50": 100.0, "MdR": 1.5, "MnR": 2.0, "SumR": 250.0}


def test_recall_at_5_10_50():
    # 60 items; query 0's correct item (column 0) scores 0 and the 59 others score
    # 1..59, so 59 score higher -> rank 59; query 1 scores item 1 highest except for
    # 6 items -> rank 6; query 2: 12 items above -> rank 12.
    n = 60
    sim = np.zeros((3, n))
    sim[0] = np.arange(n)  # item 0 scores 0, all 59 others are higher
    sim[1, 1] = 0.5
    sim[1, 2:8] = 1.0  # 6 items above
    sim[2, 2] = 0.5
    sim[2, 3:15] = 1.0  # 12 items above
    ranks = query_ranks(sim, gt=[0, 1, 2])
    assert ranks.tolist() == [59, 6, 12]
    m = retrieval_metrics(sim, gt=[0, 1, 2])
    # R@1 = R@5 = 0; R@10 = 1/3 (rank 6); R@50 = 2/3 (ranks 6, 12)
    # MdR = 12 + 1 = 13; MnR = (59 + 6 + 12)/3 + 1 = 77/3 + 1 = 26.666...
    assert m["R1"] == 0.0 and m["R5"] == 0.0
    assert m["R10"] == pytest.approx(100 / 3)
    assert m["R50"] == pytest.approx(200 / 3)
    assert m["MdR"] == 13.0
    assert m["MnR"] == pytest.approx(80 / 3)
    assert m["SumR"] == pytest.approx(100 / 3)  # 0 + 0 + 33.3


def test_non_square_with_gt():
    # 3 queries x 5 items
    #   query 0, gt 4: [0.1, 0.2, 0.3, 0.4, *0.5] -> rank 0
    #   query 1, gt 0: [*0.3, 0.9, 0.8, 0.1, 0.2] -> 0.9, 0.8 above -> rank 2
    #   query 2, gt 2: [0.5, 0.6, *0.4, 0.7, 0.1] -> 0.5, 0.6, 0.7 above -> rank 3
    # R@1 = 1/3 = 33.33 %, R@5 = 100 %; MdR = 2 + 1 = 3; MnR = 5/3 + 1 = 2.667
    sim = np.array(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5],
            [0.3, 0.9, 0.8, 0.1, 0.2],
            [0.5, 0.6, 0.4, 0.7, 0.1],
        ]
    )
    m = retrieval_metrics(sim, gt=np.array([4, 0, 2]))
    assert m["R1"] == pytest.approx(100 / 3)
    assert m["R5"] == 100.0
    assert m["MdR"] == 3.0
    assert m["MnR"] == pytest.approx(8 / 3)


def test_ties_count_in_favour_of_the_query():
    # row 0: correct 0.5 tied with column 1, only 0.9 strictly higher -> rank 1
    # row 1: correct 0.7 tied with 0.7 and 0.7, nothing higher          -> rank 0
    # row 2: correct 0.2, 0.9 and 0.5 strictly higher                  -> rank 2
    sim = np.array(
        [
            [0.5, 0.5, 0.9],
            [0.7, 0.7, 0.7],
            [0.9, 0.5, 0.2],
        ]
    )
    assert query_ranks(sim).tolist() == [1, 0, 2]
    m = retrieval_metrics(sim)
    # R@1 = 1/3; MdR = median(1, 0, 2) + 1 = 2; MnR = 3/3 + 1 = 2
    assert m["R1"] == pytest.approx(100 / 3)
    assert m["MdR"] == 2.0 and m["MnR"] == 2.0


def test_no_ties_rank_is_sorted_position():
    # Without ties the rank is the position of the correct item in the row sorted by
    # decreasing score (the reference's definition).
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(20, 20))
    sorted_pos = [int(np.flatnonzero(np.argsort(-row) == i)[0]) for i, row in enumerate(sim)]
    assert query_ranks(sim).tolist() == sorted_pos
    assert len(set(sorted_pos)) > 3


# Two captions per video, captions listed out of video order:
#   caption_video = [0, 1, 0, 1]
#                 video 0  video 1
#   caption 0 (v0) [0.9,    0.1]
#   caption 1 (v1) [0.8,    0.4]
#   caption 2 (v0) [0.2,    0.7]
#   caption 3 (v1) [0.1,    0.2]
SIM_CAPS = np.array([[0.9, 0.1], [0.8, 0.4], [0.2, 0.7], [0.1, 0.2]])
CAPTION_VIDEO = [0, 1, 0, 1]


def test_video_to_text_two_captions_per_video():
    # S_v2t[v, u] = max over captions c of video u of sim[c, v]
    #   v = 0: u = 0: max(0.9, 0.2) = 0.9; u = 1: max(0.8, 0.1) = 0.8 -> rank 0
    #   v = 1: u = 0: max(0.1, 0.7) = 0.7; u = 1: max(0.4, 0.2) = 0.4 -> rank 1
    # R@1 = 50 %, R@5 = 100 %; MdR = median(0, 1) + 1 = 1.5; MnR = 0.5 + 1 = 1.5
    m = video_to_text_metrics(SIM_CAPS, CAPTION_VIDEO)
    assert m == {"R1": 50.0, "R5": 100.0, "R10": 100.0, "R50": 100.0, "MdR": 1.5, "MnR": 1.5, "SumR": 250.0}


def test_text_to_video_two_captions_per_video():
    # caption 0 gt 0: [*0.9, 0.1] -> 0;  caption 1 gt 1: [0.8, *0.4] -> 1
    # caption 2 gt 0: [*0.2, 0.7] -> 1;  caption 3 gt 1: [0.1, *0.2] -> 0
    # R@1 = 50 %; MdR = median(0, 0, 1, 1) + 1 = 1.5; MnR = 0.5 + 1 = 1.5
    m = retrieval_metrics(torch.tensor(SIM_CAPS), gt=CAPTION_VIDEO)
    assert m == {"R1": 50.0, "R5": 100.0, "R10": 100.0, "R50": 100.0, "MdR": 1.5, "MnR": 1.5, "SumR": 250.0}


def test_video_to_text_one_caption_per_video_is_transpose():
    # captions in the order of videos [2, 0, 1]: S_v2t is sim.T with its columns put back
    # in video order.
    rng = np.random.default_rng(1)
    sim = rng.normal(size=(3, 3))
    caption_video = np.array([2, 0, 1])
    s_v2t = np.empty((3, 3))
    s_v2t[:, caption_video] = sim.T
    assert video_to_text_metrics(sim, caption_video) == retrieval_metrics(s_v2t)


def test_input_validation():
    with pytest.raises(ValueError, match="square"):
        retrieval_metrics(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="empty"):
        retrieval_metrics(np.zeros((0, 0)))
    # gt: wrong length, out of range, not integers
    with pytest.raises(ValueError, match="2 item indices"):
        retrieval_metrics(np.zeros((2, 3)), gt=[0, 1, 2])
    with pytest.raises(ValueError, match=r"gt\[1\] = 3 is out of range"):
        retrieval_metrics(np.zeros((2, 3)), gt=[0, 3])
    with pytest.raises(ValueError, match="integer"):
        retrieval_metrics(np.zeros((2, 3)), gt=[0.0, 1.0])
    # caption_video: wrong length, and a video without any caption
    with pytest.raises(ValueError, match="caption_video"):
        video_to_text_metrics(SIM_CAPS, [0, 1, 0])
    with pytest.raises(ValueError, match="no caption"):
        video_to_text_metrics(SIM_CAPS, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="out of range"):
        retrieval_metrics(SIM_CAPS, gt=[0, 1, 2, 1])


def test_dual_softmax_by_hand():
    # sim = [[2, 0], [2, 1]] (captions x videos, logits). Text->video (softmax over captions, axis 0):
    #   column 0: softmax(2, 2) = (1/2, 1/2); column 1: softmax(0, 1) = (1/(1+e), e/(1+e))
    #   caption 0: [2 * 1/2, 0 * ...] = [1, 0]          -> its video 0 stays first
    #   caption 1: [2 * 1/2, 1 * e/(1+e)] = [1, 0.731]  -> video 0 still ahead of video 1
    sim = np.array([[2.0, 0.0], [2.0, 1.0]])
    e = np.e
    np.testing.assert_allclose(dual_softmax(sim, axis=0), [[1.0, 0.0], [1.0, e / (1 + e)]])
    # Video->text prior (softmax over videos, axis 1): row 0: softmax(2, 0) = (e^2, 1)/(e^2 + 1)
    np.testing.assert_allclose(dual_softmax(sim, axis=1)[0], [2 * e**2 / (e**2 + 1), 0.0])


def test_dual_softmax_moves_a_hub_video():
    # Video 0 is a "hub": every caption scores it high. Plain t2v: caption 1 ranks video 0 (3.0)
    # above its own video 1 (2.9). With the prior over captions, video 0's mass is shared by both
    # captions (and mostly goes to caption 0, 5.0), while video 1 is claimed by caption 1 alone:
    #   video 0 column softmax(5, 3) = (0.881, 0.119): caption 1 -> 3 * 0.119 = 0.358
    #   video 1 column softmax(0, 2.9) = (0.052, 0.948): caption 1 -> 2.9 * 0.948 = 2.749
    sim = np.array([[5.0, 0.0], [3.0, 2.9]])
    assert retrieval_metrics(sim, gt=[0, 1])["R1"] == 50.0
    assert retrieval_metrics(dual_softmax(sim, axis=0), gt=[0, 1])["R1"] == 100.0
