"""ActivityNet Captions as video-paragraph retrieval."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from tclib.errors import DataError

from .base import AnnotationReader
from .files import load_json, locate, nonempty_text, rows_table, warn_uncaptioned


class ActivityNetReader(AnnotationReader):
    """ActivityNet Captions as video-paragraph retrieval, as CLIP4Clip and TeachCLIP read it.

    ``<ids json>`` lists the annotation keys (``v_<youtube id>``) of the split; ``<captions json>``
    maps each key to ``{"duration", "timestamps", "sentences"}``. The sentences are joined with
    single spaces; the segment is 0 to ``ceil(duration)`` s (timestamps are not used). Test is
    ``val_1``, as in the reference.
    """

    name = "activitynet"
    splits = ("train", "test")
    split_aliases = {"val": "test", "val_1": "test"}
    defaults: ClassVar[Mapping[str, Any]] = {}
    layout = ("train_ids.json, train.json, val_ids.json, val_1.json [in Annotations/]; "
              "videos v_<id>.mp4 (or <id>.mp4) in VideoData/ (or Activity_Videos/)")
    FILES: ClassVar[Mapping[str, tuple[str, str]]] = {
        "train": ("train_ids.json", "train.json"),
        "test": ("val_ids.json", "val_1.json"),
    }

    def video_stems(self, video_id: str) -> tuple[str, ...]:
        # TeachCLIP names the files by the annotation key, CLIP4Clip by the key without "v_".
        return (video_id, video_id[2:]) if len(video_id) > 2 else (video_id,)

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        ids_name, captions_name = self.FILES[split]
        ids_path = locate(root, ids_name)
        captions_path = locate(root, captions_name)
        ids = load_json(ids_path)
        if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
            raise DataError(f"{ids_path} must hold a JSON list of video ids")
        data = load_json(captions_path)
        if not isinstance(data, dict):
            raise DataError(f"{captions_path} must hold a JSON object video_id -> annotation")
        ids = list(dict.fromkeys(ids))
        warn_uncaptioned(ids, data, ids_path, captions_path)
        rows = []
        for vid in ids:
            if vid not in data:
                continue
            entry = data[vid]
            where = f"{captions_path}, video {vid}"
            if not isinstance(entry, dict) or "duration" not in entry or "sentences" not in entry:
                raise DataError(f"{where}: needs the keys 'duration' and 'sentences'")
            sentences = entry["sentences"]
            if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
                raise DataError(f"{where}: 'sentences' must be a list of strings")
            try:
                duration = float(entry["duration"])
            except (TypeError, ValueError) as exc:
                raise DataError(f"{where}: 'duration' {entry['duration']!r} is not a number") from exc
            if not math.isfinite(duration) or duration < 0:
                raise DataError(f"{where}: 'duration' {duration} is not a non-negative number")
            rows.append((vid, nonempty_text(" ".join(sentences), where), 0, int(math.ceil(duration))))
        return rows_table(rows)
