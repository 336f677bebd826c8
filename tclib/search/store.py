"""The index folder on disk:

    manifest.json     the model (StudentSpec), the collection's folder, the units, the shards, the index;
                      written last, so that a folder with it is a finished index
    units.csv         one row per indexed unit, in the order of the FAISS ids: key, video_id, path (relative
                      to the collection's folder), start, end (seconds; empty for whole videos), their
                      clock (tclib.search.units.CLOCKS), the file's size and sha256 (its content signature), and where its vector is (shard, row)
    failures.csv      unit or file, and why it is not indexed
    shards/<id>.npy   float16 vectors of one chunk of units, one row each; <id>.json names the units of
                      its rows (and those that failed); <id> is the fingerprint of the model and of those
                      units, so a chunk encoded once is never encoded again (resume, reruns)
    vectors.faiss     the FAISS index over the vectors of units.csv
    .lock             held by the one run that writes the folder

A manifest that does not match its files is refused, naming the field (`IndexMismatch`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TclibError
from ..files import atomic_path, read_json, write_text
from .units import COLUMNS

FORMAT = 2  # 2: moments in real seconds (tclib.search.units); 1, still read: moments in the sampler's seconds
SAMPLER_TIMES = ("its moments' times are the reference sampler's seconds (int(fps) frames each, not the times a "
                 "player shows: at 29.97 fps 2 s a minute early), as an earlier tclib made them; `tclib index` into "
                 "the same folder puts them in real seconds (whole videos are found done, moments encoded again)")
MANIFEST, UNITS, FAILURES, SHARDS, FAISS = "manifest.json", "units.csv", "failures.csv", "shards", "vectors.faiss"


class IndexMismatch(TclibError):
    """An index folder whose manifest and files disagree (the message names the field)."""


def unit_identity(row: Any) -> str:
    """What a unit's vector depends on besides the model: its key, file, segment and content (a moment's
    clock too, so that one sampled in the sampler's seconds by an earlier tclib is not taken for it)."""
    if row.clock == "player":
        return json.dumps([row.key, row.path, float(row.start), float(row.end), int(row.size), row.sha256, "player"])
    start = None if pd.isna(row.start) else int(row.start)
    end = None if pd.isna(row.end) else int(row.end)
    return json.dumps([row.key, row.path, start, end, int(row.size), row.sha256])


# ---------------------------------------------------------------------------------------- shards


def shard_paths(out: Path, shard: str) -> tuple[Path, Path]:
    return out / SHARDS / f"{shard}.npy", out / SHARDS / f"{shard}.json"


def write_shard(out: Path, shard: str, model: str, identities: list[str], vectors: np.ndarray,
                failed: dict[str, str]) -> None:
    """One chunk's vectors (float16) and what its rows are: its record first, the vectors last (their
    file's presence is what makes the chunk done), each written under a temporary name and renamed."""
    vectors_path, record_path = shard_paths(out, shard)
    vectors_path.parent.mkdir(parents=True, exist_ok=True)
    write_text(record_path, json.dumps({"model": model, "rows": identities, "failed": failed}))
    with atomic_path(vectors_path) as tmp:
        np.save(tmp, vectors.astype(np.float16, copy=False))


def finished_shards(out: Path, model: str) -> Iterator[tuple[str, dict]]:
    """(shard, its record) of every finished chunk of `model` in the folder."""
    folder = out / SHARDS
    for vectors_path in sorted(folder.glob("*.npy")) if folder.is_dir() else []:
        record_path = vectors_path.with_suffix(".json")
        if ".tmp" in vectors_path.name or not record_path.is_file():
            continue
        record = read_json(record_path, "index shard record")
        if record.get("model") == model:
            yield vectors_path.stem, record


# ------------------------------------------------------------------------------ tables and manifest


def write_units(out: Path, units: pd.DataFrame) -> None:
    with atomic_path(out / UNITS) as tmp:
        units.to_csv(tmp, index=False)


def read_units(out: Path) -> pd.DataFrame:
    path = out / UNITS
    if not path.is_file():
        raise IndexMismatch(f"{out} has no {UNITS}: not a finished index")
    units = pd.read_csv(path, dtype={"key": str, "video_id": str, "path": str, "start": "float64", "end": "float64",
                                     "clock": str, "sha256": str, "shard": str},
                        keep_default_na=False, na_values={"start": [""], "end": [""]})
    if "clock" not in units.columns:  # format 1: every moment in the sampler's seconds
        units.insert(COLUMNS.index("clock"), "clock", np.where(units["start"].isna(), "", "sampler"))
    return units


def times_note(manifest: dict, units: pd.DataFrame) -> str:
    """What a user should know of an index's times: "" or that its moments are in the sampler's seconds."""
    return SAMPLER_TIMES if manifest.get("format") == 1 and units["start"].notna().any() else ""


def write_failures(out: Path, failures: dict[str, str]) -> None:
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["unit", "reason"])
    writer.writerows(sorted(failures.items()))
    write_text(out / FAILURES, table.getvalue())


def write_manifest(out: Path, manifest: dict) -> None:
    write_text(out / MANIFEST, json.dumps({"format": FORMAT, **manifest}, indent=1))


def read_manifest(out: Path) -> dict | None:
    """The manifest of a finished index, or None when there is none (yet)."""
    path = Path(out) / MANIFEST
    return read_json(path, "index manifest") if path.is_file() else None


def check_files(out: Path, manifest: dict, units: pd.DataFrame, index_total: int | None) -> None:
    """IndexMismatch naming the field when the manifest does not describe the folder's files."""
    problems = []
    if manifest.get("format") not in (1, FORMAT):
        problems.append(f"format: {manifest.get('format')!r}, this tclib reads 1 and {FORMAT}")
    if manifest.get("units") != len(units):
        problems.append(f"units: the manifest says {manifest.get('units')}, {UNITS} holds {len(units)}")
    if list(units.columns) != [*COLUMNS, "shard", "row"]:
        problems.append(f"{UNITS}: columns {list(units.columns)}")
    missing = sorted(s for s in set(units["shard"]) if not shard_paths(out, s)[0].is_file())
    if missing:
        problems.append(f"shards: {len(missing)} missing, e.g. {missing[0]}")
    if index_total is not None and index_total != len(units):
        problems.append(f"index: {FAISS} holds {index_total} vectors, {UNITS} {len(units)} units")
    if problems:
        raise IndexMismatch(f"{out}: the index does not match its manifest: " + "; ".join(problems))


class ShardVectors:
    """The float16 vectors of an index's units, read by unit id from their shards (memory-mapped: the
    rows a query re-ranks are gathered from the page cache, nothing is loaded whole): what exact
    re-ranking and the exact ground truth read."""

    def __init__(self, out: Path, units: pd.DataFrame) -> None:
        names, self.shard = np.unique(units["shard"].to_numpy(), return_inverse=True)
        self.row = units["row"].to_numpy(dtype=np.int64)
        self.files = [np.load(shard_paths(out, name)[0], mmap_mode="r") for name in names]
        self.dim = self.files[0].shape[1] if self.files else 0

    def __len__(self) -> int:
        return len(self.row)

    def take(self, ids: np.ndarray) -> np.ndarray:
        """float32 (len(ids), dim): the vectors of units `ids`, in that order."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        shards = self.shard[ids]
        for k in np.unique(shards):
            where = np.flatnonzero(shards == k)
            out[where] = self.files[k][self.row[ids[where]]]
        return out

    def batches(self, batch: int = 65536) -> Iterator[np.ndarray]:
        """Every unit's vector in the order of the units, `batch` at a time."""
        for start in range(0, len(self), batch):
            yield self.take(np.arange(start, min(len(self), start + batch)))
