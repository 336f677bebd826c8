"""Check a data set on disk: annotation counts per split against the published sizes, and
every video file the annotations point to (present, and openable by decord with frames)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tclib.data.readers import get_reader
from tclib.errors import DataError

from ..progress import progress

__all__ = ["CheckReport", "SplitCheck", "check_dataset", "probe_video"]

log = logging.getLogger(__name__)


@dataclass
class SplitCheck:
    """The result for one split. ``unreadable`` maps a path to the reason it cannot be used."""

    split: str
    videos: int
    captions: int
    expected_videos: int | None = None
    expected_captions: int | None = None
    missing: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass
class CheckReport:
    """What :func:`check_dataset` found; ``ok`` when no video file is missing or unreadable."""

    dataset: str
    root: str
    decoded: bool
    splits: list[SplitCheck]

    @property
    def ok(self) -> bool:
        return not any(s.missing or s.unreadable for s in self.splits)

    @property
    def missing(self) -> list[str]:
        """Every missing video file once, in split order."""
        return list(dict.fromkeys(p for s in self.splits for p in s.missing))

    @property
    def unreadable(self) -> dict[str, str]:
        """Every unreadable video file once, with its reason."""
        return {p: r for s in self.splits for p, r in s.unreadable.items()}

    def table(self) -> pd.DataFrame:
        """One row per split: split, videos, captions, expected videos, expected captions,
        missing files, unreadable files (expected counts are None where unknown)."""
        return pd.DataFrame(
            [
                {
                    "split": s.split,
                    "videos": s.videos,
                    "captions": s.captions,
                    "expected videos": s.expected_videos,
                    "expected captions": s.expected_captions,
                    "missing files": len(s.missing),
                    "unreadable files": len(s.unreadable) if self.decoded else None,
                }
                for s in self.splits
            ]
        )


def probe_video(path: str) -> str | None:
    """None when decord opens ``path`` and finds frames and a frame rate, else the reason."""
    import decord  # imported here so that reading annotations does not need decord

    try:
        reader = decord.VideoReader(path, num_threads=1)
        frames = len(reader)
        fps = reader.get_avg_fps()
        del reader
    except Exception as exc:  # decord raises its own DECORDError and RuntimeError types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"decord cannot open it: {first[:200]}"
    if frames <= 0:
        return "no frames"
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        return f"frame rate {fps!r}"
    return None


def check_dataset(
    dataset: str,
    root: str | os.PathLike,
    videos_dir: str | os.PathLike | None = None,
    splits: Iterable[str] | None = None,
    decode: bool = True,
    **options: Any,
) -> CheckReport:
    """Read every split (or ``splits``) of ``dataset`` under ``root`` and check its videos.

    Counts are unique ``video_id`` values and non-empty captions of each split. A video file is
    missing when it is not an existing file; unreadable (with ``decode``) when decord cannot open
    it or finds no frames. Each file is opened once even when several splits use it.
    Raises DataError on a bad annotation file.
    """
    reader = get_reader(dataset)
    names = list(splits) if splits else list(reader.available_splits(root))
    if not names:
        raise DataError(f"no {dataset} splits found under {root}")
    tables: dict[str, pd.DataFrame] = {}
    for split in names:
        tables[reader.canonical_split(split, root)] = reader.read(root, split, videos_dir, **options)

    paths = list(dict.fromkeys(p for t in tables.values() for p in t["video_path"]))
    exists = {p: os.path.isfile(p) for p in paths}
    reasons: dict[str, str | None] = {}
    if decode:
        present = [p for p in paths if exists[p]]
        for path in progress(present, desc=f"open {dataset} videos", unit="video"):
            reasons[path] = probe_video(path)

    results = []
    for split, table in tables.items():
        counts = reader.expected_counts(split, options)
        files = list(dict.fromkeys(table["video_path"]))
        results.append(
            SplitCheck(
                split=split,
                videos=int(table["video_id"].nunique()),
                captions=int(table["caption"].notna().sum()),
                expected_videos=counts.videos if counts else None,
                expected_captions=counts.captions if counts else None,
                missing=[p for p in files if not exists[p]],
                unreadable={p: r for p in files if (r := reasons.get(p)) is not None},
                note=counts.note if counts else "",
            )
        )
    report = CheckReport(dataset=dataset, root=str(root), decoded=decode, splits=results)
    log.info("%s at %s: %d missing, %d unreadable video files", dataset, root, len(report.missing),
             len(report.unreadable))
    return report
