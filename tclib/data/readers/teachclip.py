"""TeachCLIP's own evaluation layout."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from tclib.errors import DataError

from .base import AnnotationReader
from .didemo import DiDeMoReader
from .files import (
    ANNOTATIONS_FOLDER,
    Row,
    locate,
    nonempty_text,
    read_id_list,
    read_lines,
    rows_table,
)

log = logging.getLogger(__name__)


class TeachclipReader(AnnotationReader):
    """TeachCLIP's own evaluation layout under a collection folder (e.g. ``datasets/msrvtt``).

    * ``VideoSet/<set>.txt``: the gallery, one video id per line (this names the split);
    * ``QuerySet/<set>-query.txt``: ``<query id>\\t<query>`` per line;
    * ``Annotations/<gt>.txt``: ``<query id>\\t<video id>`` per line, the ground truth, named
      ``<set>-gt.txt`` or ``<set without its last -part>-gt.txt`` (``msrvtt1k-test`` ->
      ``msrvtt1k-gt``) unless the ``gt_file`` option names it.

    A row per ground-truth line, then one row with caption ``None`` per gallery video that no
    query points to. A set without query file (a training list) gives caption-less rows only.
    The reference gives the 0-31 s segment to sets whose path contains ``didemo``
    (``didemo_segment`` overrides that: True or False).
    """

    name = "teachclip"
    defaults = {"gt_file": None, "didemo_segment": None}
    layout = ("VideoSet/<set>.txt, QuerySet/<set>-query.txt, Annotations/<set prefix>-gt.txt; "
              "videos in VideoData/")

    def available_splits(self, root: str | os.PathLike) -> tuple[str, ...]:
        folder = Path(root) / "VideoSet"
        return tuple(sorted(p.stem for p in folder.glob("*.txt"))) if folder.is_dir() else ()

    def canonical_split(self, split: str, root: str | os.PathLike) -> str:
        return split  # any set name; a missing VideoSet file is reported when it is read

    def _gt_path(self, root: Path, split: str, gt_file: str | None) -> Path:
        if gt_file is not None:
            return locate(root, gt_file)
        names = [f"{split}-gt.txt"]
        if "-" in split:
            names.append(f"{split.rsplit('-', 1)[0]}-gt.txt")
        for name in names:
            path = root / ANNOTATIONS_FOLDER / name
            if path.is_file():
                return path
        raise DataError(
            f"ground-truth file not found: {' nor '.join(str(root / ANNOTATIONS_FOLDER / n) for n in names)}"
        )

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        set_path = root / "VideoSet" / f"{split}.txt"
        if not set_path.is_file():
            raise DataError(f"video set file not found: {set_path}")
        gallery = read_id_list(set_path)
        didemo = options["didemo_segment"]
        if didemo is None:
            didemo = "didemo" in str(set_path)
        start, end = DiDeMoReader.SEGMENT if didemo else (None, None)

        query_path = root / "QuerySet" / f"{split}-query.txt"
        pairs: list[tuple[str, str]] = []
        if query_path.is_file():
            queries: dict[str, str] = {}
            for n, line in read_lines(query_path, strip=False):
                qid, sep, text = line.partition("\t")
                qid, text = qid.strip(), text.strip()
                if not sep or not qid:
                    raise DataError(f"line {n} of {query_path} is not '<query id>\\t<query>': {line[:80]!r}")
                if qid in queries:
                    raise DataError(f"duplicate query id {qid!r} on line {n} of {query_path}")
                queries[qid] = nonempty_text(text, f"line {n} of {query_path}")
            gt_path = self._gt_path(root, split, options["gt_file"])
            in_gallery = set(gallery)
            used: set[str] = set()
            for n, line in read_lines(gt_path):
                fields = line.split("\t")
                if len(fields) != 2 or not all(f.strip() for f in fields):
                    raise DataError(f"line {n} of {gt_path} is not '<query id>\\t<video id>': {line[:80]!r}")
                qid, vid = fields
                if qid not in queries:
                    raise DataError(f"query {qid!r} on line {n} of {gt_path} is not in {query_path}")
                if vid not in in_gallery:
                    raise DataError(f"video {vid!r} on line {n} of {gt_path} is not in {set_path}")
                pairs.append((vid, queries[qid]))
                used.add(qid)
            if len(used) < len(queries):
                log.warning("%d queries of %s have no ground truth in %s", len(queries) - len(used),
                            query_path, gt_path)
        else:
            log.info("no query file %s: %s is read as a gallery without captions", query_path, split)
        queried = {vid for vid, _ in pairs}
        rows: list[Row] = [(vid, text, start, end) for vid, text in pairs]
        rows += [(vid, None, start, end) for vid in dict.fromkeys(gallery) if vid not in queried]
        return rows_table(rows)
