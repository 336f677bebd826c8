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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import FolderInTheWay
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


def file_identity(path: str | os.PathLike, root: str | os.PathLike) -> dict[str, Any]:
    """A data file's identity: its path relative to `root` (the data set's folder; absolute when the
    file lies elsewhere) and its content signature. The same data set moved, copied or mounted
    elsewhere has the same identities; a path spelled another way too."""
    path, root = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    relative = os.path.relpath(path, root)
    outside = relative == os.pardir or relative.startswith(os.pardir + os.sep)
    return {"path": path if outside else relative, **content_signature(path)}


def legacy_file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """A file's identity in the stage records written before identities were location-independent:
    its resolved path, size and modification time. Only to find those folders again (Stage)."""
    path = Path(path).resolve()
    if not path.is_file():
        return {"path": str(path), "missing": True}
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


RECORD_FORMAT = 2  # stage.json written with location-independent identities; earlier records have no "format"


class Stage:
    """One stage's folder, `<base>/<fingerprint of inputs>/`.

    `legacy` are the same inputs as the records made before identities were location-independent
    wrote them (upstream fingerprints and file identities of that time). A finished folder of those
    inputs is adopted: renamed to this stage's folder, its record rewritten with these inputs (and
    `adopted_from` its old name), so that a project made earlier, in its place or moved, reruns
    nothing. After a move its file identities name other paths: they match by file name and size.
    """

    def __init__(self, base: str | Path, inputs: StageInputs | Mapping[str, Any],
                 legacy: StageInputs | Mapping[str, Any] | None = None) -> None:
        self.base = Path(base)
        self.inputs = _as_json(inputs.record() if isinstance(inputs, StageInputs) else dict(inputs))
        self.fingerprint = fingerprint(self.inputs)
        self.directory = self.base / self.fingerprint
        self.record = self.directory / RECORD
        self.legacy = None if legacy is None else _as_json(
            legacy.record() if isinstance(legacy, StageInputs) else dict(legacy))

    def find(self, adopt: bool = True) -> Path | None:
        """The folder of the finished stage: its own, or a folder made before location-independent
        identities with the same inputs, adopted into its own (or, without `adopt`, left where it is)."""
        if self.record.is_file():
            return self.directory
        earlier = self._legacy_folder()
        if earlier is None or not adopt:
            return earlier
        adopt_folder(earlier, self.directory)
        info = {**read_record(self.directory).get("info", {}), "adopted_from": earlier.name}
        self.finish(**info)
        log.info("%s: found the finished run %s (made before location-independent identities), now %s",
                 self.base, earlier.name, self.fingerprint)
        return self.directory

    def done(self) -> bool:
        """True when the stage finished with these inputs; otherwise creates its folder (kept if there)."""
        if self.find():
            return True
        if self.directory.is_dir():
            log.info("%s: continuing the unfinished run in %s", self.base, self.directory.name)
        elif nearest := self._nearest_finished():
            name, changed = nearest
            log.info("%s: running with inputs %s; the finished run %s (kept) differs in %s",
                     self.base, self.fingerprint, name, ", ".join(changed))
        self.directory.mkdir(parents=True, exist_ok=True)
        return False

    def _records(self) -> Iterator[tuple[Path, dict]]:
        for record in sorted(self.base.glob(f"*/{RECORD}")) if self.base.is_dir() else []:
            try:
                yield record.parent, json.loads(record.read_text())
            except (OSError, ValueError):
                continue

    def _legacy_folder(self) -> Path | None:
        """The finished folder an earlier record names for `legacy`: by its fingerprint, else the one
        record whose inputs match with file identities compared by file name and size."""
        if self.legacy is None:
            return None
        named = self.base / fingerprint(self.legacy)
        if (named / RECORD).is_file() and "format" not in read_record(named):
            return named
        matches = [folder for folder, record in self._records()
                   if "format" not in record and _same_earlier_inputs(record.get("inputs"), self.legacy)]
        return matches[0] if len(matches) == 1 else None

    def _nearest_finished(self) -> tuple[str, list[str]] | None:
        """The finished run beside this one whose inputs differ in the fewest keys, and those keys."""
        runs = []
        for folder, record in self._records():
            inputs = record.get("inputs", {})
            changed = sorted(k for k in set(inputs) | set(self.inputs) if inputs.get(k) != self.inputs.get(k))
            runs.append((len(changed), folder.name, changed))
        return min(runs)[1:] if runs else None

    def finish(self, **info: Any) -> None:
        with atomic_path(self.record) as tmp:
            tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "format": RECORD_FORMAT,
                                       "inputs": self.inputs, "info": info}, indent=2, default=str))


def _same_earlier_inputs(recorded: Any, wanted: Any) -> bool:
    """Earlier inputs equal, a file identity ({"path", "size", ...}) matching one of the same file name
    and size wherever it lay."""
    if isinstance(recorded, dict) and isinstance(wanted, dict):
        if "path" in recorded and "path" in wanted and ("size" in recorded or "missing" in recorded):
            return (Path(recorded["path"]).name == Path(wanted["path"]).name
                    and recorded.get("size") == wanted.get("size") and recorded.get("missing") == wanted.get("missing"))
        return recorded.keys() == wanted.keys() and all(_same_earlier_inputs(recorded[k], wanted[k]) for k in recorded)
    return recorded == wanted


def adopt_folder(earlier: Path, directory: Path) -> None:
    """Rename a finished folder to `directory` (an empty folder there, left by a run that did nothing yet,
    is replaced; anything else there is an error naming it). Nothing is copied, nothing deleted."""
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    if directory.exists():
        raise FolderInTheWay(f"{directory} is in the way of the finished run {earlier}; move one of them away")
    os.rename(earlier, directory)


def read_record(directory: str | Path) -> dict[str, Any]:
    """What a finished stage recorded in `directory`: {"fingerprint", "format", "inputs", "info"} ({} when
    unfinished; records made before location-independent identities have no "format")."""
    record = Path(directory) / RECORD
    return json.loads(record.read_text()) if record.is_file() else {}
