"""What every benchmark script ends with: its Markdown table printed and written to --out."""

from __future__ import annotations

from pathlib import Path

from tclib.project import resolve_path


def write_report(lines: list[str], out: str) -> Path:
    """Print `lines` and write them to `out` (relative to the project root), its folder made if needed."""
    print("\n".join(lines))
    path = Path(resolve_path(out))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return path
