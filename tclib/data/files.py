"""Reading the small JSON files of annotations and caches, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tclib.errors import DataError


def read_json(path: str | Path, kind: str = "file") -> Any:
    """Parse a JSON file; DataError "<kind> not found: <path>", or naming the path and the parse error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{kind} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON in {path}: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
