"""Searching an index folder: `Index(folder).search(["a query", ...], k)` -> a table of query, rank,
score, key, video_id, path, start, end (seconds; a moment's as a player shows them, see
tclib.search.units), clock (`tclib search` prints it).

The student the index was encoded with (its manifest's model) encodes the queries; a query is cut to
the model's words as in training (the answer's `truncated` column says so), an empty one is an error.
Searching with another model (`model=`) is refused, naming the fields it differs in, and so is an
index whose manifest does not match its files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import ParamsError
from .model import StudentSpec, spec_from_record
from .store import ShardVectors, check_files, read_manifest, read_units, times_note
from .vectors import IndexChoice, load, search

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["query", "rank", "score", "key", "video_id", "path", "start", "end", "clock", "truncated"]


class Index:
    """A finished index folder, its student loaded once; `root` overrides where the collection's videos
    are now (the manifest's folder by default)."""

    def __init__(self, folder: str | Path, model: StudentSpec | None = None, root: str | None = None,
                 device: str = "cpu") -> None:
        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        if manifest is None:
            raise ParamsError(f"{self.folder} is not a finished index (no manifest.json): run tclib index first")
        self.manifest = manifest
        self.spec = spec_from_record(manifest["model"])
        if model is not None:
            self.spec.check_same(model, str(self.folder))
        self.units = read_units(self.folder)
        self.choice = IndexChoice.of_record(manifest["index"])
        self.index = load(self.folder, self.choice)
        check_files(self.folder, manifest, self.units, self.index.ntotal)
        self.stored = ShardVectors(self.folder, self.units)
        self.note = times_note(manifest, self.units)  # "" unless its moments are in the sampler's seconds
        if self.note:
            log.warning("%s: %s", self.folder, self.note)
        self.root = root or manifest["root"]
        self.device = torch.device(device)
        self.student = self.spec.load().to(self.device)
        self.tokenizer = self.spec.tokenizer()

    def __len__(self) -> int:
        return len(self.units)

    def file_of(self, path: str) -> str:
        """Where a unit's video is now."""
        return path if os.path.isabs(path) else os.path.join(self.root, path)

    @torch.no_grad()
    def encode(self, queries: list[str]) -> np.ndarray:
        """(Q, D) float32 text vectors; ParamsError for an empty query."""
        empty = [i for i, q in enumerate(queries) if not str(q).strip()]
        if empty:
            raise ParamsError(f"query {empty[0] + 1} of {len(queries)} is empty: give some text to search for")
        tokens = self.tokenizer([str(q) for q in queries]).to(self.device)
        return self.student.encode_text(tokens).float().cpu().numpy()

    def search(self, queries: list[str] | str, k: int = 10) -> pd.DataFrame:
        """The k best units of each query, best first: one row per (query, rank)."""
        queries = [queries] if isinstance(queries, str) else list(queries)
        if k < 1:
            raise ParamsError(f"k must be ≥ 1, got {k}")
        scores, ids = search(self.stored, self.index, self.choice, self.encode(queries), k)
        rows = []
        for query, query_scores, query_ids in zip(queries, scores, ids, strict=True):
            truncated = self.tokenizer.truncated(query)
            for rank, (score, unit) in enumerate(zip(query_scores, query_ids, strict=True), 1):
                u = self.units.iloc[int(unit)]
                start, end = (None, None) if pd.isna(u.start) else (float(u.start), float(u.end))
                rows.append((query, rank, float(score), u.key, u.video_id, self.file_of(u.path), start, end, u.clock,
                             truncated))
        return pd.DataFrame(rows, columns=RESULT_COLUMNS)
