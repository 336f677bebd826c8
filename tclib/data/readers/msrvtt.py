"""MSR-VTT in the CLIP4Clip / TeachCLIP layout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .base import AnnotationReader
from .files import csv_captions, json_captions, locate, rows_table


class MsrvttReader(AnnotationReader):
    """MSR-VTT in the CLIP4Clip / TeachCLIP layout.

    ``MSRVTT_data.json`` holds ``{"videos": [...], "sentences": [{"caption", "video_id", "sen_id"}]}``;
    ``MSRVTT_train.9k.csv`` (7k: ``MSRVTT_train.7k.csv``) lists the training videos (column
    ``video_id``) and ``MSRVTT_JSFUSION_test.csv`` the 1k-A test pairs (columns key, vid_key,
    video_id, sentence). Training rows are the sentences of the json whose video is in the training
    csv, in json order (one row per caption as CLIP4Clip's training loader unfolds them, or the
    first caption per video with ``expand_sentences=False``); test rows are the rows of the test csv.
    """

    name = "msrvtt"
    splits = ("train", "test")
    defaults = {
        "train_csv": "MSRVTT_train.9k.csv",
        "test_csv": "MSRVTT_JSFUSION_test.csv",
        "expand_sentences": True,
    }
    layout = ("MSRVTT_data.json, MSRVTT_train.9k.csv (or MSRVTT_train.7k.csv), MSRVTT_JSFUSION_test.csv "
              "[in Annotations/]; videos in VideoData/ (or videos/, MSRVTT_Videos/)")

    def counts_key(self, split: str, options: Mapping[str, Any]) -> str:
        csv_name = Path(str(options[f"{split}_csv"])).name
        variants = {"train": {"7k": "train-7k"}, "test": {"full": "test-full"}}[split]
        return next((key for tag, key in variants.items() if tag in csv_name), split)

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        csv_path = locate(root, options[f"{split}_csv"])
        if split == "train":
            table = json_captions(locate(root, "MSRVTT_data.json"), csv_path, bool(options["expand_sentences"]))
        else:
            table = csv_captions(csv_path)
        return rows_table([(v, c, None, None) for v, c in zip(table["video_id"], table["caption"], strict=True)])
