"""Teachers: heavy text-video models whose similarities and frame relevance TeachCLIP imitates."""

from __future__ import annotations

from open_clip.model import CLIP

from ...errors import ParamsError
from .base import Features, Teacher, select
from .ts2net import TS2Net
from .xclip import XCLIP
from .xpool import XPool

TEACHERS: dict[str, type[Teacher]] = {cls.name: cls for cls in (XCLIP, TS2Net, XPool)}


def build_teacher(name: str, clip: CLIP, max_words: int, max_frames: int, temporal_layers: int = 4,
                  mask_padding: bool = False, **options) -> Teacher:
    """A fresh teacher of the registered class `name` on the given backbone.

    Every teacher class takes these keyword arguments (and may ignore those it has no use for):
    max_words, max_frames, temporal_layers (its seqTransf depth) and mask_padding (whether padded
    frame slots get zero weight where the reference gives them some). `options` are the class's own
    (`TEACHERS[name].options()`: e.g. TS2-Net's noisy_selection and token_shift)."""
    if name not in TEACHERS:
        raise ParamsError(f"unknown teacher {name!r}; known teachers: {sorted(TEACHERS)}")
    unknown = set(options) - set(TEACHERS[name].options())
    if unknown:
        raise ParamsError(f"teacher {name!r} has no option(s) {sorted(unknown)}; it has {TEACHERS[name].options()}")
    return TEACHERS[name](clip, max_words=max_words, max_frames=max_frames, temporal_layers=temporal_layers,
                          mask_padding=mask_padding, **options)


__all__ = ["Features", "Teacher", "TEACHERS", "TS2Net", "XCLIP", "XPool", "build_teacher", "select"]
