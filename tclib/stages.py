"""Stage records: each stage's outputs live in a folder named by the fingerprint of what it reads.

A stage is described by its inputs: a frozen dataclass of exactly what it reads (its own parameters,
file identities, the identity of the data it consumed, the fingerprints of the stages it consumes),
written as `StageInputs.record()`. Its outputs go to `<base>/<fingerprint>/`, and `stage.json` there
records the fingerprint and the inputs once the stage has finished. So:

- a stage whose folder has a record is done, and is skipped;
- a stage whose inputs changed gets a new folder: the outputs of the earlier inputs are kept beside
  it, untouched, and switching back to the earlier params finds them again (`tclib clean` removes
  the folders no params file refers to);
- an interrupted stage has a folder without a record: the next run continues in it, resuming from
  whatever its own checkpoints saved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from .files import atomic_path

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

    def record(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            out[f.name] = value.record() if isinstance(value, StageInputs) else value
        return out

    @property
    def fingerprint(self) -> str:
        return fingerprint(_as_json(self.record()))


def _as_json(value: Any) -> Any:
    """`value` as its JSON text reads back (tuples as lists, keys as strings): what a record holds."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies a file's content cheaply: its resolved path, size and modification time (a
    path spelled another way gives the same identity; a file replaced in place gives another)."""
    path = Path(path).resolve()
    if not path.is_file():
        return {"path": str(path), "missing": True}
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class Stage:
    """One stage's folder, `<base>/<fingerprint of inputs>/`."""

    def __init__(self, base: str | Path, inputs: StageInputs | Mapping[str, Any]) -> None:
        self.base = Path(base)
        self.inputs = _as_json(inputs.record() if isinstance(inputs, StageInputs) else dict(inputs))
        self.fingerprint = fingerprint(self.inputs)
        self.directory = self.base / self.fingerprint
        self.record = self.directory / RECORD

    def done(self) -> bool:
        """True when the stage finished with these inputs; otherwise creates its folder (kept if there)."""
        if self.record.is_file():
            return True
        if self.directory.is_dir():
            log.info("%s: continuing the unfinished run in %s", self.base, self.directory.name)
        elif nearest := self._nearest_finished():
            name, changed = nearest
            log.info("%s: running with inputs %s; the finished run %s (kept) differs in %s",
                     self.base, self.fingerprint, name, ", ".join(changed))
        self.directory.mkdir(parents=True, exist_ok=True)
        return False

    def _nearest_finished(self) -> tuple[str, list[str]] | None:
        """The finished run beside this one whose inputs differ in the fewest keys, and those keys."""
        if not self.base.is_dir():
            return None
        runs = []
        for record in sorted(self.base.glob(f"*/{RECORD}")):
            try:
                inputs = json.loads(record.read_text()).get("inputs", {})
            except (OSError, ValueError):
                continue
            changed = sorted(k for k in set(inputs) | set(self.inputs) if inputs.get(k) != self.inputs.get(k))
            runs.append((len(changed), record.parent.name, changed))
        return min(runs)[1:] if runs else None

    def finish(self, **info: Any) -> None:
        with atomic_path(self.record) as tmp:
            tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "inputs": self.inputs, "info": info},
                                      indent=2, default=str))


def read_record(directory: str | Path) -> dict[str, Any]:
    """What a finished stage recorded in `directory`: {"fingerprint", "inputs", "info"} ({} when unfinished)."""
    record = Path(directory) / RECORD
    return json.loads(record.read_text()) if record.is_file() else {}
