"""Stage records: each stage's outputs live in a folder named by the fingerprint of what it reads.

A stage is described by its inputs: a frozen dataclass of exactly what it reads (its own parameters,
file identities, the identity of the data it consumed, the fingerprints of the stages it consumes),
written as `StageInputs.as_json()`. Its outputs go to `<base>/<fingerprint>/`, and `stage.json` there
records the fingerprint and the inputs once the stage has finished. So:

- a stage whose folder has a record is done, and is skipped;
- a stage whose inputs changed gets a new folder: the outputs of the earlier inputs are kept beside
  it, untouched, and switching back to the earlier params finds them again (`tclib clean` removes
  the folders no params file refers to);
- an interrupted stage has a folder without a record: the next run continues in it, resuming from
  whatever its own checkpoints saved.

Folders made before identities were location-independent (records without "format") are adopted by
one explicit step, `tclib migrate` (tclib.migrate); a stage that begins beside such folders says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .files import atomic_path, content_signature

log = logging.getLogger(__name__)

RECORD = "stage.json"


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serializable parts (params values, upstream fingerprints)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageInputs:
    """Base of the frozen dataclasses that hold a stage's inputs (nanoGPT's GPTConfig is the model).

    The record, and so the fingerprint, is made of the fields by one rule: a field equal to its
    default is left out. A field without a default is always recorded; `X | None = None` is a
    field that only some variants of a stage read (None: not read); and a field added after stage
    folders existed takes as its default the value those folders were made with, so that they keep
    their fingerprint. A default is therefore never changed: a new behaviour is a new value. Nested
    StageInputs are recorded as their own records.
    """

    def as_json(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            out[f.name] = value.as_json() if isinstance(value, StageInputs) else value
        return out

    @property
    def fingerprint(self) -> str:
        return fingerprint(json_value(self.as_json()))


def json_value(value: Any) -> Any:
    """`value` as its JSON text reads back (tuples as lists, keys as strings): what a record holds."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def file_identity(path: str | os.PathLike, root: str | os.PathLike) -> dict[str, Any]:
    """A data file's identity: its path relative to `root` (the data set's folder; absolute when the
    file lies elsewhere) and its content signature. The same data set moved, copied or mounted
    elsewhere has the same identities; a path spelled another way too."""
    path, root = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    relative = os.path.relpath(path, root)
    outside = relative == os.pardir or relative.startswith(os.pardir + os.sep)
    return {"path": path if outside else relative, **content_signature(path)}


RECORD_FORMAT = 2  # stage.json written with location-independent identities; earlier records have no "format"


class Stage:
    """One stage's folder, `<base>/<fingerprint of inputs>/`: `finished()` asks whether its record is
    there, `begin()` makes (or continues in) its folder, `finish(**info)` writes its record."""

    def __init__(self, base: str | Path, inputs: StageInputs | Mapping[str, Any]) -> None:
        self.base = Path(base)
        self.inputs = json_value(inputs.as_json() if isinstance(inputs, StageInputs) else dict(inputs))
        self.fingerprint = fingerprint(self.inputs)
        self.directory = self.base / self.fingerprint
        self.record_file = self.directory / RECORD

    def finished(self) -> bool:
        """Whether the stage finished with these inputs (its record is there)."""
        return self.record_file.is_file()

    def begin(self) -> None:
        """Make the stage's folder, or continue in the unfinished one there, saying which, and which
        finished run beside it differs and how; or that folders an earlier tclib made lie beside it."""
        if self.directory.is_dir():
            log.info("%s: continuing the unfinished run in %s", self.base, self.directory.name)
        elif nearest := self._nearest_finished():
            name, changed = nearest
            log.info("%s: running with inputs %s; the finished run %s (kept) differs in %s",
                     self.base, self.fingerprint, name, ", ".join(changed))
        earlier = [folder.name for folder in sorted(self.base.glob("*/"))
                   if folder != self.directory and made_by_earlier_rule(folder)]
        if earlier:
            log.warning("%s: no finished run with these inputs, but %d folder(s) made by an earlier tclib lie here "
                        "(%s): if one of them is this stage, `tclib migrate <params file>` adopts it",
                        self.base, len(earlier), ", ".join(earlier))
        self.directory.mkdir(parents=True, exist_ok=True)

    def finish(self, **info: Any) -> None:
        with atomic_path(self.record_file) as tmp:
            tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "format": RECORD_FORMAT,
                                       "inputs": self.inputs, "info": info}, indent=2, default=str))

    def _nearest_finished(self) -> tuple[str, list[str]] | None:
        """The finished run beside this one whose inputs differ in the fewest keys, and those keys."""
        runs = []
        for folder, record in finished_records(self.base):
            inputs = record.get("inputs", {})
            changed = sorted(k for k in set(inputs) | set(self.inputs) if inputs.get(k) != self.inputs.get(k))
            runs.append((len(changed), folder.name, changed))
        return min(runs)[1:] if runs else None


def finished_records(base: Path) -> Iterator[tuple[Path, dict]]:
    """(folder, record) of every finished stage folder under `base` (unreadable records skipped)."""
    for record in sorted(base.glob(f"*/{RECORD}")) if base.is_dir() else []:
        try:
            yield record.parent, json.loads(record.read_text())
        except (OSError, ValueError):
            continue


def made_by_earlier_rule(folder: Path) -> bool:
    """A finished stage folder written before identities were location-independent (`tclib migrate`
    adopts those a params file names): its record has no "format", or, for a frame cache, there is no
    record beside its complete manifest."""
    record = folder / RECORD
    try:
        if record.is_file():
            return "format" not in json.loads(record.read_text())
        manifest = folder / "manifest.json"
        return manifest.is_file() and bool(json.loads(manifest.read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def read_record(directory: str | Path) -> dict[str, Any]:
    """What a finished stage recorded in `directory`: {"fingerprint", "format", "inputs", "info"} ({} when
    unfinished; records made before location-independent identities have no "format")."""
    record = Path(directory) / RECORD
    return json.loads(record.read_text()) if record.is_file() else {}
