"""MSVD in the CLIP4Clip layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tclib.errors import DataError

from .base import AnnotationReader
from .files import load_pickle, locate, nonempty_text, read_id_list, rows_table


class MsvdReader(AnnotationReader):
    """MSVD in the CLIP4Clip layout: split lists plus ``raw-captions.pkl``.

    ``raw-captions.pkl`` maps each video id to its captions, each a list of tokens; a caption is
    its tokens joined with single spaces. Every caption of every listed video is a row.
    """

    name = "msvd"
    splits = ("train", "val", "test")
    defaults = {"captions_pkl": "raw-captions.pkl"}
    layout = ("train_list.txt, val_list.txt, test_list.txt, raw-captions.pkl [in Annotations/]; "
              "videos in VideoData/ (or YouTubeClips/, MSVD_Videos/)")

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        list_path = locate(root, f"{split}_list.txt")
        pkl_path = locate(root, options["captions_pkl"])
        ids = read_id_list(list_path)
        captions = load_pickle(pkl_path)
        if not isinstance(captions, dict):
            raise DataError(f"{pkl_path} must hold a dict video_id -> captions, found {type(captions).__name__}")
        rows = []
        for vid in ids:
            if vid not in captions:
                raise DataError(f"video {vid} listed in {list_path} has no captions in {pkl_path}")
            entry = captions[vid]
            if not isinstance(entry, (list, tuple)) or not entry:
                raise DataError(f"{pkl_path}: captions of {vid} must be a non-empty list of token lists")
            for k, tokens in enumerate(entry):
                where = f"{pkl_path}, video {vid}, caption {k}"
                if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
                    raise DataError(f"{where}: expected a list of tokens, found {type(tokens).__name__}")
                rows.append((vid, nonempty_text(" ".join(tokens), where), None, None))
        return rows_table(rows)
