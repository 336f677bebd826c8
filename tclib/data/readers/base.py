"""AnnotationReader: one data set layout, read into the table every layout gives (see tclib.data.readers)."""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from tclib.errors import DataError

from .counts import PAPER_COUNTS, SplitCounts
from .videos import VideoIndex

log = logging.getLogger(__name__)

COLUMNS: list[str] = ["video_id", "caption", "split", "start", "end", "clip_id", "video_path"]


class AnnotationReader(ABC):
    """One data set layout. Subclasses set the class attributes and implement :meth:`_rows`."""

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ()
    split_aliases: ClassVar[Mapping[str, str]] = {}
    defaults: ClassVar[Mapping[str, Any]] = {}
    layout: ClassVar[str] = ""

    def available_splits(self, root: str | os.PathLike) -> tuple[str, ...]:
        """The splits this layout has (for ``teachclip``: those found under ``root``)."""
        return self.splits

    def canonical_split(self, split: str, root: str | os.PathLike) -> str:
        """``split`` with aliases resolved; DataError for a split the layout does not have."""
        split = self.split_aliases.get(split, split)
        known = self.available_splits(root)
        if split not in known:
            raise DataError(f"unknown {self.name} split {split!r} under {root} (expected one of {list(known)})")
        return split

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults updated with ``given``; DataError for an option the reader does not know."""
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise DataError(f"unknown option {unknown[0]!r} for {self.name} (known: {sorted(self.defaults)})")
        return {**self.defaults, **given}

    def counts_key(self, split: str, options: Mapping[str, Any]) -> str:
        """Key of :data:`PAPER_COUNTS` for ``split`` read with ``options``."""
        return split

    def expected_counts(self, split: str, options: Mapping[str, Any] | None = None) -> SplitCounts | None:
        """Published sizes of ``split``, or None where none are recorded."""
        opts = self.options(options or {})
        return PAPER_COUNTS.get(self.name, {}).get(self.counts_key(split, opts))

    def video_stems(self, video_id: str) -> tuple[str, ...]:
        """File names (without extension) under which the video of ``video_id`` may be stored."""
        return (video_id,)

    def read(self, root: str | os.PathLike, split: str, videos_dir: str | os.PathLike | None = None,
             **options: Any) -> pd.DataFrame:
        """Read one split; see the module docstring for the columns."""
        root = Path(root)
        opts = self.options(options)
        split = self.canonical_split(split, root)
        df = self._rows(root, split, opts).reset_index(drop=True)
        index = VideoIndex(root, videos_dir)
        df["split"] = split
        df["clip_id"] = [
            vid if pd.isna(s) else f"{vid}@{s}-{e}" for vid, s, e in zip(df["video_id"], df["start"], df["end"], strict=True)
        ]
        paths = {vid: index.find(self.video_stems(vid)) for vid in dict.fromkeys(df["video_id"])}
        df["video_path"] = df["video_id"].map(paths)
        log.info(
            "%s %s: %d captions of %d videos (%d files indexed in %s)",
            self.name, split, int(df["caption"].notna().sum()), df["video_id"].nunique(), len(index),
            ", ".join(str(f) for f in index.folders),
        )
        return df[COLUMNS]

    @abstractmethod
    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        """The rows of one split: columns video_id, caption, start, end (see :func:`rows_table`)."""
