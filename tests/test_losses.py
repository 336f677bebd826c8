"""Tests of tclib.losses against values worked out by hand."""

import math

import pytest
import torch

from tclib.losses import (
    COARSE_METHODS,
    FINE_METHODS,
    coarse_teaching_loss,
    contrastive_loss,
    fine_teaching_loss,
    reference_loss_weights,
    total_loss,
)

LN2 = math.log(2.0)
LN3 = math.log(3.0)


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def log_t(rows):
    """Logits whose softmax along any axis is the matrix normalised along that axis."""
    return torch.log(t(rows))


# --------------------------------------------------------------------------- contrastive


def test_contrastive_by_hand():
    # logits [[2, 0], [1, 1]]
    # text->video rows, targets 0 and 1:
    #   row 0: -log(e^2 / (e^2 + 1)) = log(1 + e^-2)
    #   row 1: -log(e^1 / (e^1 + e^1)) = log 2
    # video->text = rows of the transpose [[2, 1], [0, 1]]:
    #   row 0: -log(e^2 / (e^2 + e^1)) = log(1 + e^-1)
    #   row 1: -log(e^1 / (e^0 + e^1)) = log(1 + e^-1)
    # loss = ((log(1+e^-2) + log 2)/2 + (2 log(1+e^-1))/2) / 2
    #      = (0.126928 + 0.693147 + 2 * 0.313262) / 4 = 0.361650
    expected = (math.log(1 + math.exp(-2)) + LN2 + 2 * math.log(1 + math.exp(-1))) / 4
    assert expected == pytest.approx(0.3616496, abs=1e-7)
    assert contrastive_loss(t([[2, 0], [1, 1]])).item() == pytest.approx(expected, abs=1e-12)


def test_contrastive_rejects_non_square():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        contrastive_loss(torch.zeros(2, 3))


# --------------------------------------------------------------------------- coarse: pear


def test_pear_zero_when_student_equals_teacher():
    s = t([[3.0, 1.0, -2.0], [0.5, 2.0, 0.0], [1.0, -1.0, 4.0]])
    assert coarse_teaching_loss(s, s.clone(), "pear").item() == pytest.approx(0.0, abs=1e-12)


def test_pear_reversed_rows_gives_four():
    # student [[2, 0], [0, 1]], teacher = each row reversed [[0, 2], [1, 0]].
    # A softmax row of two entries [a, 1 - a] centres to [a - 1/2, 1/2 - a]; reversing the
    # row flips its sign, so every row Pearson is -1 and 1 - r = 2: the mean is 2.
    # Columns: student [[2, 0], [0, 1]], teacher.T [[0, 1], [2, 0]] are reversed too -> 2.
    # Sum of both directions = 4.
    s = t([[2, 0], [0, 1]])
    teacher = t([[0, 2], [1, 0]])
    assert coarse_teaching_loss(s, teacher, "pear").item() == pytest.approx(4.0, abs=1e-12)


def test_pear_2x2_by_hand():
    # For two entries the Pearson correlation is +1 if both rows favour the same column,
    # -1 otherwise.  student [[2, 0], [0, 1]], teacher [[1, 0], [3, 2]]:
    #   rows:    student favours (col0, col1), teacher (col0, col0) -> r = (+1, -1)
    #            -> 1 - r = (0, 2), mean 1
    #   columns: student.T [[2, 0], [0, 1]] favours (0, 1), teacher.T [[1, 3], [0, 2]]
    #            favours (1, 1) -> r = (-1, +1) -> 1 - r = (2, 0), mean 1
    # total = 1 + 1 = 2
    loss = coarse_teaching_loss(t([[2, 0], [0, 1]]), t([[1, 0], [3, 2]]), "pear")
    assert loss.item() == pytest.approx(2.0, abs=1e-12)


def test_pear_3x3_by_hand():
    # Logits log(M): the row softmax is M's row divided by its sum and Pearson ignores
    # that positive scale, so r is the Pearson correlation of the rows of M and N
    # themselves (and likewise for columns).
    # M = [[1,1,2],[2,1,2],[3,3,1]], N = [[3,3,1],[2,2,1],[3,2,2]]; centred rows, scaled:
    #   row 0: [-1,-1, 2] . [ 1, 1,-2] = -6, norms sqrt6*sqrt6 -> r = -1
    #   row 1: [ 1,-2, 1] . [ 1, 1,-2] = -3                     -> r = -1/2
    #   row 2: [ 1, 1,-2] . [ 2,-1,-1] =  3                     -> r = +1/2
    #   text->video mean of 1 - r = (2 + 1.5 + 0.5) / 3 = 4/3
    #   col 0: [-1, 0, 1] . [ 1,-2, 1] =  0                     -> r = 0
    #   col 1: [-1,-1, 2] . [ 2,-1,-1] = -3                     -> r = -1/2
    #   col 2: [ 1, 1,-2] . [-1,-1, 2] = -6                     -> r = -1
    #   video->text mean of 1 - r = (1 + 1.5 + 2) / 3 = 3/2
    # total = 4/3 + 3/2 = 17/6 = 2.8333...
    m = log_t([[1, 1, 2], [2, 1, 2], [3, 3, 1]])
    n = log_t([[3, 3, 1], [2, 2, 1], [3, 2, 2]])
    assert coarse_teaching_loss(m, n, "pear").item() == pytest.approx(17 / 6, abs=1e-12)
    # Pearson is symmetric in its arguments, so swapping roles gives the same value.
    assert coarse_teaching_loss(n, m, "pear").item() == pytest.approx(17 / 6, abs=1e-12)


# --------------------------------------------------------------------------- coarse: ce


def test_ce_by_hand_mean_over_all_entries():
    # student log([[1,3],[1,1]]): rows p = [1/4, 3/4], [1/2, 1/2]
    #                             columns  [1/2, 1/2], [3/4, 1/4]
    # teacher log([[3,1],[1,1]]): rows q = [3/4, 1/4], [1/2, 1/2]
    #                             columns  [3/4, 1/4], [1/2, 1/2]
    # text->video, sum of -q log p over the 4 entries:
    #   row 0: 3/4 log 4 + 1/4 log(4/3) = 2 log2 - 1/4 log3
    #   row 1: 1/2 log 2 + 1/2 log 2    = log2
    #   -> (3 log2 - 1/4 log3), divided by B*B = 4 (not by B = 2)
    # video->text, same on the columns:
    #   col 0: 3/4 log 2 + 1/4 log 2    = log2
    #   col 1: 1/2 log(4/3) + 1/2 log 4 = 2 log2 - 1/2 log3
    #   -> (3 log2 - 1/2 log3) / 4
    # total = (6 log2 - 3/4 log3) / 4 = 1.5 log2 - 0.1875 log3 = 0.833731
    expected = 1.5 * LN2 - 0.1875 * LN3
    assert expected == pytest.approx(0.833731, abs=1e-6)
    s = log_t([[1, 3], [1, 1]])
    teacher = log_t([[3, 1], [1, 1]])
    assert coarse_teaching_loss(s, teacher, "ce").item() == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- coarse: l1


def test_l1_by_hand():
    # d = student - teacher = [[0 - 0.5, 3 - 0], [1 - 1, 0.5 - 0]] = [[-0.5, 3], [0, 0.5]]
    # smooth-L1 (beta 1): 0.5 d^2 if |d| < 1 else |d| - 0.5
    #   -0.5 -> 0.125,  3 -> 2.5,  0 -> 0,  0.5 -> 0.125
    # mean = 2.75 / 4 = 0.6875
    s = t([[0, 3], [1, 0.5]])
    teacher = t([[0.5, 0], [1, 0]])
    assert coarse_teaching_loss(s, teacher, "l1").item() == pytest.approx(0.6875, abs=1e-12)


# --------------------------------------------------------------------------- teachers


def test_two_teachers_average():
    # l1 of student [[0, 3], [1, 0.5]]:
    #   teacher A [[0.5, 0], [1, 0]] -> 0.6875 (see test_l1_by_hand)
    #   teacher B = student          -> 0
    # two teachers -> (0.6875 + 0) / 2 = 0.34375
    s = t([[0, 3], [1, 0.5]])
    a = t([[0.5, 0], [1, 0]])
    loss = coarse_teaching_loss(s, [a, s.clone()], "l1")
    assert loss.item() == pytest.approx(0.34375, abs=1e-12)


@pytest.mark.parametrize("method", COARSE_METHODS)
def test_two_teachers_is_mean_of_single_losses(method):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 4, generator=g, dtype=torch.float64)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    b = torch.randn(4, 4, generator=g, dtype=torch.float64)
    both = coarse_teaching_loss(s, [a, b], method)
    single = (coarse_teaching_loss(s, a, method) + coarse_teaching_loss(s, b, method)) / 2
    assert both.item() == pytest.approx(single.item(), abs=1e-12)
    assert coarse_teaching_loss(s, a, method).item() != pytest.approx(
        coarse_teaching_loss(s, b, method).item(), abs=1e-6
    )


# --------------------------------------------------------------------------- fine


def test_fine_ce_by_hand():
    # weights [[0.5, 0.5]], relevance [[1, 0]]:
    # entries -r log w = [-1 * log 0.5, -0 * log 0.5] = [log2, 0]; mean over B*F = 2
    # -> log2 / 2 = 0.346574
    loss = fine_teaching_loss(t([[0.5, 0.5]]), t([[1, 0]]), "ce")
    assert loss.item() == pytest.approx(LN2 / 2, abs=1e-12)
    # Two rows: weights [[0.5, 0.5], [0.25, 0.75]], relevance [[1, 0], [0.5, 0.5]]
    # entries: log2, 0, 0.5 log 4 = log2, 0.5 log(4/3) = log2 - 0.5 log3
    # mean over 4 entries = (3 log2 - 0.5 log3) / 4 = 0.381172
    loss = fine_teaching_loss(t([[0.5, 0.5], [0.25, 0.75]]), t([[1, 0], [0.5, 0.5]]), "ce")
    assert loss.item() == pytest.approx((3 * LN2 - 0.5 * LN3) / 4, abs=1e-12)


def test_fine_pear_by_hand():
    # row 0: w = [0.2, 0.3, 0.5], r = [0.5, 0.3, 0.2]; both have mean 1/3
    #   w - 1/3 = [-4, -1, 5] / 30, r - 1/3 = [5, -1, -4] / 30
    #   dot = -20 + 1 - 20 = -39, norms sqrt(42) each -> r = -39/42 = -13/14
    #   1 - r = 27/14
    # row 1: w = [0.25, 0.25, 0.5] centres to [-1, -1, 2]/12,
    #        r = [0.2, 0.2, 0.6]   centres to [-2, -2, 4]/15 -> same direction, r = 1 -> 0
    # mean = (27/14 + 0) / 2 = 27/28 = 0.964286
    w = t([[0.2, 0.3, 0.5], [0.25, 0.25, 0.5]])
    rel = t([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    assert fine_teaching_loss(w, rel, "pear").item() == pytest.approx(27 / 28, abs=1e-12)


def test_fine_l1_by_hand():
    # d = w - r = [[0.5 - 1, 0.5 - 0], [0.1 - 0.1, 0.9 - 0.9]] = [[-0.5, 0.5], [0, 0]]
    # smooth-L1: 0.5 * 0.25 = 0.125 twice, 0 twice -> mean = 0.25 / 4 = 0.0625
    w = t([[0.5, 0.5], [0.1, 0.9]])
    rel = t([[1, 0], [0.1, 0.9]])
    assert fine_teaching_loss(w, rel, "l1").item() == pytest.approx(0.0625, abs=1e-12)


def test_fine_two_teachers_average():
    # ce with weights [[0.25, 0.75]] and two teachers:
    #   [1, 0] -> mean of [log 4, 0]    = log 4 / 2    = log2
    #   [0, 1] -> mean of [0, log(4/3)] = log(4/3) / 2 = log2 - 0.5 log3
    #   average = (2 log2 - 0.5 log3) / 2 = log2 - 0.25 log3 = 0.418494
    w = t([[0.25, 0.75]])
    loss = fine_teaching_loss(w, [t([[1, 0]]), t([[0, 1]])], "ce")
    assert loss.item() == pytest.approx(LN2 - 0.25 * LN3, abs=1e-12)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("method", COARSE_METHODS)
def test_coarse_gradient_reaches_student_only(method):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    coarse_teaching_loss(s, [teacher], method).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    assert s.grad.abs().sum().item() > 0
    assert teacher.grad is None


@pytest.mark.parametrize("method", FINE_METHODS)
def test_fine_gradient_reaches_student_only(method):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    rel_logits = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    fine_teaching_loss(logits.softmax(-1), rel_logits.softmax(-1), method).backward()
    assert logits.grad is not None and logits.grad.abs().sum().item() > 0
    assert rel_logits.grad is None


def test_contrastive_gradient():
    logits = t([[2, 0], [1, 1]]).requires_grad_()
    contrastive_loss(logits).backward()
    # d/dS of the diagonal entries is negative: raising a positive lowers the loss.
    assert logits.grad[0, 0].item() < 0 and logits.grad[1, 1].item() < 0


# --------------------------------------------------------------------------- total


def test_reference_weights():
    assert reference_loss_weights("pear") == {"contrastive": 0.2, "coarse": 1.0, "fine": 2.0}
    assert reference_loss_weights("l1") == {"contrastive": 0.2, "coarse": 1.0, "fine": 2.0}
    assert reference_loss_weights("ce") == {"contrastive": 1.0, "coarse": 10.0, "fine": 1.0}
    # a fresh dict each time
    reference_loss_weights("pear")["fine"] = 0.0
    assert reference_loss_weights("pear")["fine"] == 2.0


def test_total_loss_weights():
    c, k, f = t(1.0), t(2.0), t(3.0)
    # pear: 0.2 * 1 + 1 * 2 + 2 * 3 = 8.2
    assert total_loss(c, k, f, "pear").item() == pytest.approx(8.2, abs=1e-12)
    # l1 uses the pear weights: 8.2
    assert total_loss(c, k, f, "l1").item() == pytest.approx(8.2, abs=1e-12)
    # ce: 1 * 1 + 10 * 2 + 1 * 3 = 24
    assert total_loss(c, k, f, "ce").item() == pytest.approx(24.0, abs=1e-12)
    # override one weight: pear with contrastive 1 -> 1 + 2 + 6 = 9
    assert total_loss(c, k, f, "pear", {"contrastive": 1.0}).item() == pytest.approx(9.0)
    # coarse only (fine None): pear -> 0.2 + 2 = 2.2
    assert total_loss(c, k, None, "pear").item() == pytest.approx(2.2, abs=1e-12)
    # no teacher: ce -> 1 * 1 = 1
    assert total_loss(c, None, None, "ce").item() == pytest.approx(1.0, abs=1e-12)


def test_total_loss_keeps_gradient():
    c = t(1.0).requires_grad_()
    total_loss(c, t(2.0), t(3.0), "pear").backward()
    assert c.grad.item() == pytest.approx(0.2)


# --------------------------------------------------------------------------- validation


def test_unknown_method_lists_valid_ones():
    s = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="pear, ce, l1"):
        coarse_teaching_loss(s, s, "kl")
    with pytest.raises(ValueError, match="ce, pear, l1"):
        fine_teaching_loss(s, s, "mse")
    with pytest.raises(ValueError, match="pear, ce, l1"):
        total_loss(torch.tensor(1.0), None, None, "kl")
    with pytest.raises(ValueError, match="pear, ce, l1"):
        reference_loss_weights("kl")


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(3, 3\)"):
        coarse_teaching_loss(torch.zeros(2, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 5\)"):
        fine_teaching_loss(torch.full((2, 4), 0.25), torch.full((2, 5), 0.2))
    # the second teacher of a list is checked too
    with pytest.raises(ValueError, match=r"teacher_logits\[1\]"):
        coarse_teaching_loss(torch.zeros(2, 2), [torch.zeros(2, 2), torch.zeros(2, 3)])


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        coarse_teaching_loss(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="empty"):
        coarse_teaching_loss(torch.zeros(2, 2), [])
    with pytest.raises(ValueError, match="unknown loss weight"):
        total_loss(torch.tensor(1.0), None, None, "pear", {"distill": 1.0})
