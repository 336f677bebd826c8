"""VATEX in TeachCLIP's MSR-VTT-like layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .base import AnnotationReader
from .files import csv_captions, json_captions, locate, rows_table


class VatexReader(AnnotationReader):
    """VATEX in TeachCLIP's MSR-VTT-like layout (its configs read VATEX with the MSR-VTT loader).

    Training rows are the sentences of ``VATEX_data.json`` whose video is in ``VATEX_train.csv``,
    in json order (one row per caption, or the first caption per video with
    ``expand_sentences=False``); val and test rows are the rows of their csv files (columns
    ``video_id``, ``sentence``).
    """

    name = "vatex"
    splits = ("train", "val", "test")
    defaults = {
        "data_json": "VATEX_data.json",
        "train_csv": "VATEX_train.csv",
        "val_csv": "VATEX_val.csv",
        "test_csv": "VATEX_test.csv",
        "expand_sentences": True,
    }
    layout = "VATEX_data.json, VATEX_train.csv, VATEX_val.csv, VATEX_test.csv [in Annotations/]; videos in VideoData/"

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        csv_path = locate(root, options[f"{split}_csv"])
        if split == "train":
            json_path = locate(root, options["data_json"])
            table = json_captions(json_path, csv_path, bool(options["expand_sentences"]))
        else:
            table = csv_captions(csv_path)
        return rows_table([(v, c, None, None) for v, c in zip(table["video_id"], table["caption"], strict=True)])
