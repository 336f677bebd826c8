"""Training losses of TeachCLIP: contrastive, coarse- and fine-grained teaching.

Notation: ``B`` is the batch size, ``F`` the number of frames per video. A logit matrix
``S`` has shape (B, B); ``S[i, j]`` scores text ``i`` against video ``j`` and the diagonal
holds the matching pairs. Every function returns a scalar tensor that gradients flow
through (to the student only: teacher tensors are detached).

The numbers are those of the reference TeachCLIP training code, quirks included:

* the soft cross-entropy of coarse teaching is averaged over all B x B entries,
  not over the B rows;
* the Pearson correlations carry no epsilon, so a row with no variance (a constant row,
  e.g. a 1 x 1 logit matrix or perfectly uniform frame weights) yields NaN, as it does in
  the reference.

Any temperature applied to the logits (the reference divides both student and teacher
logits by the same constant before these losses) is the caller's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, cast, get_args

import torch
import torch.nn.functional as F

__all__ = [
    "COARSE_METHODS",
    "FINE_METHODS",
    "LOSS_TERMS",
    "contrastive_loss",
    "coarse_teaching_loss",
    "fine_teaching_loss",
    "reference_loss_weights",
    "total_loss",
]

CoarseMethod = Literal["pear", "ce", "l1"]
COARSE_METHODS = get_args(CoarseMethod)
"""Coarse-grained teaching methods; ``"pear"`` is the reference default."""

FineMethod = Literal["ce", "pear", "l1"]
FINE_METHODS = get_args(FineMethod)
"""Fine-grained teaching methods; ``"ce"`` is the reference default."""

LossTerm = Literal["contrastive", "coarse", "fine"]
LOSS_TERMS = get_args(LossTerm)
"""Names of the terms of :func:`total_loss`, the keys of a weights dict."""

TeacherInput = torch.Tensor | Sequence[torch.Tensor]

_REFERENCE_WEIGHTS: dict[str, dict[str, float]] = {
    "pear": {"contrastive": 0.2, "coarse": 1.0, "fine": 2.0},
    "l1": {"contrastive": 0.2, "coarse": 1.0, "fine": 2.0},
    "ce": {"contrastive": 1.0, "coarse": 10.0, "fine": 1.0},
}


# --------------------------------------------------------------------------- helpers


def _check_method(method: str, valid: Sequence[str], what: str) -> None:
    if method not in valid:
        raise ValueError(
            f"unknown {what} method {method!r}; valid methods are: {', '.join(valid)}"
        )


def _check_2d(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(x.shape)}")


def _teacher_list(
    student: torch.Tensor, teachers: TeacherInput, student_name: str, teacher_name: str
) -> list[torch.Tensor]:
    """Return the teachers as a list of detached tensors, cast to the student's dtype and device."""
    _check_2d(student, student_name)
    if isinstance(teachers, torch.Tensor):
        teachers = [teachers]
    teachers = list(teachers)
    if not teachers:
        raise ValueError(f"{teacher_name} is an empty list: give at least one teacher")
    out = []
    for k, teacher in enumerate(teachers):
        name = f"{teacher_name}[{k}]" if len(teachers) > 1 else teacher_name
        _check_2d(teacher, name)
        if teacher.shape != student.shape:
            raise ValueError(
                f"shape mismatch: {student_name} has shape {tuple(student.shape)} "
                f"but {name} has shape {tuple(teacher.shape)}"
            )
        out.append(teacher.detach().to(dtype=student.dtype, device=student.device))
    return out


def _row_pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between matching rows of ``x`` and ``y`` (shape (N,)).

    r_i = <x_i - mean(x_i), y_i - mean(y_i)> / (||x_i - mean(x_i)|| * ||y_i - mean(y_i)||).
    No epsilon is added (as in the reference), so a constant row gives NaN.
    """
    xc = x - x.mean(dim=-1, keepdim=True)
    yc = y - y.mean(dim=-1, keepdim=True)
    return (xc * yc).sum(dim=-1) / (xc.norm(dim=-1) * yc.norm(dim=-1))


# --------------------------------------------------------------------------- losses


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE loss with the diagonal as positives.

    With ``S`` the (B, B) text x video logits,

        L_t2v = -1/B sum_i log softmax(S[i, :])[i]
        L_v2t = -1/B sum_j log softmax(S[:, j])[j]
        L     = (L_t2v + L_v2t) / 2
    """
    _check_2d(logits, "logits")
    if logits.shape[0] != logits.shape[1]:
        raise ValueError(
            f"logits must be square (B, B) with positives on the diagonal, "
            f"got shape {tuple(logits.shape)}"
        )
    target = torch.arange(logits.shape[0], device=logits.device)
    text_to_video = F.cross_entropy(logits, target)
    video_to_text = F.cross_entropy(logits.t(), target)
    return (text_to_video + video_to_text) / 2


def _coarse_single(student: torch.Tensor, teacher: torch.Tensor, method: str) -> torch.Tensor:
    """Coarse teaching loss against one (detached) teacher logit matrix."""
    if method == "pear":
        loss = student.new_zeros(())
        for s, t in ((student, teacher), (student.t(), teacher.t())):
            p = s.softmax(dim=-1)
            q = t.softmax(dim=-1)
            loss = loss + (1 - _row_pearson(p, q)).mean()
        return loss
    if method == "ce":
        loss = student.new_zeros(())
        for s, t in ((student, teacher), (student.t(), teacher.t())):
            loss = loss + (-t.softmax(dim=-1) * s.log_softmax(dim=-1)).mean()
        return loss
    # "l1"
    return F.smooth_l1_loss(student, teacher, reduction="mean", beta=1.0)


def coarse_teaching_loss(
    student_logits: torch.Tensor,
    teacher_logits: TeacherInput,
    method: str = "pear",
) -> torch.Tensor:
    """Coarse-grained teaching: the student's in-batch logits imitate each teacher's.

    ``student_logits`` is the (B, B) text x video matrix; ``teacher_logits`` one matrix
    of the same shape or a list of them (one per teacher). The loss is computed against
    each teacher and averaged: L = 1/K sum_k L(S, T_k). Teachers are detached.

    Methods (p = softmax of a student row, q = softmax of the teacher's row):

    * ``"pear"``: mean over rows of 1 - Pearson(p, q), computed on the rows (text->video)
      and on the columns (video->text, i.e. on the transposed matrices); the two means
      are summed, so the loss lies in [0, 4].
    * ``"ce"``: soft cross-entropy -q * log p, averaged over all B x B entries (the row
      cross-entropy divided by B * B, not by B), on rows and on columns, summed.
    * ``"l1"``: smooth-L1 (beta 1) between the logit matrices, averaged over entries:
      0.5 d^2 where |d| < 1, |d| - 0.5 elsewhere, with d = S - T.
    """
    _check_method(method, COARSE_METHODS, "coarse teaching")
    teachers = _teacher_list(student_logits, teacher_logits, "student_logits", "teacher_logits")
    total = cast(torch.Tensor, sum(_coarse_single(student_logits, t, method) for t in teachers))  # teachers: not empty
    return total / len(teachers)


def _fine_single(weights: torch.Tensor, relevance: torch.Tensor, method: str) -> torch.Tensor:
    """Fine teaching loss against one (detached) teacher relevance matrix."""
    if method == "ce":
        # Padded frames have weight 0 and relevance 0; clamping keeps 0 * log(0) at 0 instead of NaN
        # and changes nothing where the weight is positive.
        return (-relevance * torch.log(weights.clamp_min(torch.finfo(weights.dtype).tiny))).mean()
    if method == "pear":
        return (1 - _row_pearson(weights, relevance)).mean()
    # "l1"
    return F.smooth_l1_loss(weights, relevance, reduction="mean", beta=1.0)


def fine_teaching_loss(
    afa_weights: torch.Tensor,
    teacher_relevance: TeacherInput,
    method: str = "ce",
) -> torch.Tensor:
    """Fine-grained teaching: AFA's frame weights imitate the teacher's frame relevance.

    ``afa_weights`` (B, F) are softmax(AFA logits) at temperature 1 for the B videos of
    the batch; ``teacher_relevance`` (B, F), or a list of them (one per teacher), is the
    teacher's frame-text relevance of each positive pair. Both have rows summing to 1.
    The loss is averaged over teachers; teachers are detached.

    Methods (w = AFA weights, r = relevance):

    * ``"ce"``: mean over all B x F entries of -r * log(w) (w = 0 on padded frames counts as 0).
    * ``"pear"``: mean over rows of 1 - Pearson(w_i, r_i).
    * ``"l1"``: smooth-L1 (beta 1) between w and r, averaged over entries.
    """
    _check_method(method, FINE_METHODS, "fine teaching")
    teachers = _teacher_list(afa_weights, teacher_relevance, "afa_weights", "teacher_relevance")
    total = cast(torch.Tensor, sum(_fine_single(afa_weights, t, method) for t in teachers))  # teachers: not empty
    return total / len(teachers)


# --------------------------------------------------------------------------- total


def reference_loss_weights(coarse_method: str) -> dict[str, float]:
    """Weights of the loss terms used by the reference for a coarse teaching method.

    ``"pear"`` and ``"l1"``: 0.2 * contrastive + 1 * coarse + 2 * fine;
    ``"ce"``: 1 * contrastive + 10 * coarse + 1 * fine. Returns a fresh dict.
    """
    _check_method(coarse_method, COARSE_METHODS, "coarse teaching")
    return dict(_REFERENCE_WEIGHTS[coarse_method])


def total_loss(
    contrastive: torch.Tensor,
    coarse: torch.Tensor | None,
    fine: torch.Tensor | None,
    coarse_method: str,
    weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Weighted sum of the loss terms: w_c * contrastive + w_k * coarse + w_f * fine.

    The weights default to :func:`reference_loss_weights` of ``coarse_method``; entries
    of ``weights`` (keys ``"contrastive"``, ``"coarse"``, ``"fine"``) override them.
    A term given as None is left out, e.g. ``fine=None`` for a student taught at the
    coarse level only. Note that the reference weights still scale the contrastive term
    (by 0.2 for ``"pear"``); a student trained without any teacher usually wants
    ``weights={"contrastive": 1.0}``.
    """
    w = reference_loss_weights(coarse_method)
    if weights is not None:
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(
                f"unknown loss weight key(s) {unknown}; valid keys are: {', '.join(LOSS_TERMS)}"
            )
        w.update({k: float(v) for k, v in weights.items()})
    if not isinstance(contrastive, torch.Tensor):
        raise ValueError(f"contrastive must be a torch.Tensor, got {type(contrastive).__name__}")
    loss = w["contrastive"] * contrastive
    if coarse is not None:
        loss = loss + w["coarse"] * coarse
    if fine is not None:
        loss = loss + w["fine"] * fine
    return loss
