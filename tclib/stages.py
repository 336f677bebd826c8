"""Stage records: a stage's output directory holds `stage.json` with the fingerprint of its inputs.

A stage is skipped when its record is there with the same fingerprint. When the fingerprint
differs (params or an upstream stage changed), the old outputs are removed and the stage runs
again; an interrupted stage has no record yet, so it runs again and resumes from whatever its
own checkpoints saved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serializable parts (params values, upstream fingerprints)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stage:
    def __init__(self, directory: str | Path, fingerprint: str) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.record = self.directory / "stage.json"

    def done(self) -> bool:
        """True when the stage finished with the same inputs; clears stale outputs otherwise."""
        if self.record.is_file():
            recorded = json.loads(self.record.read_text()).get("fingerprint")
            if recorded == self.fingerprint:
                return True
            log.warning("%s: inputs changed since it ran (%s -> %s), running it again",
                        self.directory, recorded, self.fingerprint)
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        return False

    def finish(self, **info: Any) -> None:
        tmp = self.record.with_name("stage.json.tmp")
        tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "info": info}, indent=2, default=str))
        os.replace(tmp, self.record)


def read_record(directory: str | Path) -> dict[str, Any]:
    """What a finished stage recorded in `directory`: {"fingerprint", "info"} ({} when unfinished)."""
    record = Path(directory) / "stage.json"
    return json.loads(record.read_text()) if record.is_file() else {}
