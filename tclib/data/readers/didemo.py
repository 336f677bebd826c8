"""DiDeMo as video-paragraph retrieval."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from tclib.errors import DataError

from .base import AnnotationReader
from .files import (
    load_json,
    locate,
    nonempty_text,
    read_id_list,
    rows_table,
    warn_uncaptioned,
)


class DiDeMoReader(AnnotationReader):
    """DiDeMo as video-paragraph retrieval, as CLIP4Clip and TeachCLIP read it.

    ``<split>_data.json`` is a list of ``{"video", "description", "times", ...}``; the
    descriptions of a video, in json order, are joined with single spaces into one paragraph.
    The segment is 0-31 s for every video: the reference computes the moment times from
    ``times`` and then replaces them by this fixed span, which covers the 30 s to which the
    annotation tool truncated the videos.
    """

    name = "didemo"
    splits = ("train", "val", "test")
    defaults: ClassVar[Mapping[str, Any]] = {}
    layout = ("{train,val,test}_list.txt, {train,val,test}_data.json [in Annotations/]; "
              "videos in VideoData/ (or DiDeMo_Videos/)")
    SEGMENT: ClassVar[tuple[int, int]] = (0, 31)

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        list_path = locate(root, f"{split}_list.txt")
        json_path = locate(root, f"{split}_data.json")
        ids = read_id_list(list_path)
        data = load_json(json_path)
        if not isinstance(data, list):
            raise DataError(f"{json_path} must hold a JSON list, found {type(data).__name__}")
        wanted = set(ids)
        texts: dict[str, list[str]] = {}
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "video" not in item or "description" not in item:
                raise DataError(f"entry {i} of {json_path} needs the keys 'video' and 'description'")
            vid = item["video"]
            if not isinstance(vid, str):
                raise DataError(f"entry {i} of {json_path}: 'video' must be a string")
            description = item["description"]
            if not isinstance(description, str):
                raise DataError(f"entry {i} of {json_path} ({vid}): 'description' must be a string")
            if vid in wanted:
                texts.setdefault(vid, []).append(description)
        warn_uncaptioned(ids, texts, list_path, json_path)
        start, end = self.SEGMENT
        rows = []
        for vid, parts in texts.items():
            paragraph = nonempty_text(" ".join(parts), f"{json_path}, video {vid}")
            rows.append((vid, paragraph, start, end))
        return rows_table(rows)
