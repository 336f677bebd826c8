"""Annotation readers for every data set of the paper, behind one interface.

:func:`read_annotations` returns, for any data set and split, a table with the same columns:

``video_id``
    the video's id as the annotation files spell it.
``caption``
    one query: a sentence (MSR-VTT, MSVD, VATEX) or a paragraph, i.e. all captions of a video
    joined with single spaces (DiDeMo, ActivityNet: video-paragraph retrieval). ``None`` only for
    gallery videos of the ``teachclip`` layout that no query points to.
``split``
    the split the row was read for.
``start``, ``end``
    the segment, in whole seconds, that the frame sampler reads (nullable ``Int64``; ``<NA>``
    when the whole video is used).
``clip_id``
    the key under which the clip's frames are cached: ``video_id``, or
    ``"<video_id>@<start>-<end>"`` when there is a segment.
``video_path``
    the video file (see :class:`VideoIndex`); returned whether or not it exists, so that
    ``tclib data check`` can report missing files.

Layouts (annotation files may also sit in an ``Annotations/`` folder under the root):

=============  ==========================================================================
msrvtt         ``MSRVTT_data.json``, ``MSRVTT_train.9k.csv`` (7k: ``MSRVTT_train.7k.csv``),
               ``MSRVTT_JSFUSION_test.csv``; splits train, test
msvd           ``train_list.txt``, ``val_list.txt``, ``test_list.txt``, ``raw-captions.pkl``;
               splits train, val, test
didemo         ``{train,val,test}_list.txt``, ``{train,val,test}_data.json``; splits train,
               val, test
activitynet    ``train_ids.json``, ``train.json``, ``val_ids.json``, ``val_1.json``; splits
               train, test (= val_1; ``val`` and ``val_1`` are accepted)
vatex          ``VATEX_data.json``, ``VATEX_train.csv``, ``VATEX_val.csv``,
               ``VATEX_test.csv``; splits train, val, test
teachclip      ``VideoSet/<set>.txt``, ``QuerySet/<set>-query.txt``, ``Annotations/<gt>.txt``;
               one split per ``VideoSet`` file
=============  ==========================================================================

Videos are looked up under the root in ``videos/``, ``MSRVTT_Videos/``, ``VideoData/``,
``MSVD_Videos/``, ``YouTubeClips/``, ``DiDeMo_Videos/``, ``Activity_Videos/``, ``Videos/``
(each searched recursively) and the root itself, or in ``videos_dir`` when given.

Behaviour of the reference data loaders (CLIP4Clip, TeachCLIP) that is kept on purpose:

* DiDeMo: the per-caption moment times in the json are not used; every paragraph spans the
  whole video as the fixed segment 0-31 s (the annotation tool truncated videos to 30 s).
* ActivityNet: the caption timestamps are not used; the segment is 0 to ``ceil(duration)``.
* ActivityNet video files are named ``v_<id>.<ext>`` in the TeachCLIP layout and ``<id>.<ext>``
  (without the ``v_`` of the annotation keys) in the CLIP4Clip layout; both are found.
* ``teachclip`` layout: a ``VideoSet`` file whose path contains ``didemo`` gets the 0-31 s
  segment, as the reference video loader decides it from the path.

Where the reference silently drops a video (DiDeMo, ActivityNet: a listed video without captions
or without a video file), the video file stays in the table so that it can be reported, and a
listed video without captions is dropped with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from tclib.errors import DataError

from .activitynet import ActivityNetReader
from .base import COLUMNS, AnnotationReader
from .counts import PAPER_COUNTS, SplitCounts
from .didemo import DiDeMoReader
from .msrvtt import MsrvttReader
from .msvd import MsvdReader
from .teachclip import TeachclipReader
from .vatex import VatexReader
from .videos import VIDEO_EXTENSIONS, VIDEO_FOLDERS, VideoIndex

__all__ = [
    "COLUMNS",
    "PAPER_COUNTS",
    "READERS",
    "VIDEO_EXTENSIONS",
    "VIDEO_FOLDERS",
    "AnnotationReader",
    "SplitCounts",
    "VideoIndex",
    "coerce_options",
    "get_reader",
    "read_annotations",
]

READERS: dict[str, AnnotationReader] = {
    reader.name: reader
    for reader in (MsrvttReader(), MsvdReader(), DiDeMoReader(), ActivityNetReader(), VatexReader(),
                   TeachclipReader())
}


def get_reader(dataset: str) -> AnnotationReader:
    """The reader registered under ``dataset``; DataError naming the known ones otherwise."""
    try:
        return READERS[dataset]
    except KeyError:
        raise DataError(f"unknown data set {dataset!r} (known: {sorted(READERS)})") from None


def read_annotations(dataset: str, root: str | os.PathLike, split: str,
                     videos_dir: str | os.PathLike | None = None, **options: Any) -> pd.DataFrame:
    """Read one split of a data set: see the module docstring for the layouts and columns.

    Args:
        dataset: a key of :data:`READERS` (msrvtt, msvd, didemo, activitynet, vatex, teachclip).
        root: the data set folder (annotation files in it or in its ``Annotations/``).
        split: a split of the data set (``teachclip``: a ``VideoSet`` name).
        videos_dir: folder of the video files; found under ``root`` when None.
        **options: reader options, e.g. ``train_csv="MSRVTT_train.7k.csv"`` or
            ``expand_sentences=False`` for MSR-VTT.
    """
    return get_reader(dataset).read(root, split, videos_dir, **options)


def coerce_options(dataset: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """Reader options given as strings (``key=value`` on the command line) in their types:
    booleans for options whose default is a boolean or None (``true``/``false``, ``1``/``0``,
    ``yes``/``no``; ``none`` for None), strings otherwise."""
    reader = get_reader(dataset)
    reader.options(raw)  # unknown names
    out: dict[str, Any] = {}
    for key, value in raw.items():
        default = reader.defaults[key]
        low = value.strip().lower()
        if default is None and low == "none":
            out[key] = None
        elif isinstance(default, bool) or (default is None and low in _BOOLEANS):
            if low not in _BOOLEANS:
                raise DataError(f"option {key} of {dataset} takes true or false, got {value!r}")
            out[key] = _BOOLEANS[low]
        else:
            out[key] = value
    return out


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
