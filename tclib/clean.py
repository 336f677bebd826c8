"""`tclib clean`: remove the stage folders that no params file refers to any more.

Reruns never delete anything: a stage whose inputs changed writes a new folder beside the old one
(tclib.stages). This command lists, for each experiment of the given params files, the stage
folders under results/<exp>/ (frame caches, backbone, teachers and their feature caches,
students) that none of those params files would read, with their sizes, and removes them unless
`dry_run`. Executed notebooks, tables and logs are never touched. An experiment whose frame cache
is not complete yet is skipped whole: what its stages read cannot be known before its data is
prepared. Folders an earlier tclib made (before identities were location-independent) are never
removed: they are listed, for `tclib migrate` to adopt or for their owner to remove by hand.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TclibError
from .experiment.data import prepared_data
from .experiment.plan import stage_plan
from .params import Params, load_params
from .stages import made_by_earlier_rule

log = logging.getLogger(__name__)

# Stage folders: <exp>/<pattern>, each named by its fingerprint.
STAGE_FOLDERS = ("frames/*", "backbone/*", "teachers/*/*", "teachers/*/*/features/*", "students/*/*")


@dataclass
class CleanReport:
    removed: list[tuple[Path, int]] = field(default_factory=list)  # folder, bytes
    kept: list[Path] = field(default_factory=list)
    earlier_rule: list[Path] = field(default_factory=list)  # made by an earlier tclib: kept, never removed here
    skipped: list[str] = field(default_factory=list)  # experiments left alone, with the reason

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.removed)


def referenced(P: Params) -> set[Path] | None:
    """The stage folders the run of `P` reads or writes, or None when its data is not prepared."""
    data = prepared_data(P)
    if data is None:
        return None
    return {path.resolve() for path in stage_plan(P, data).values()}


def stage_folders(exp_dir: Path) -> list[Path]:
    """Every stage folder under an experiment, parents before the folders inside them."""
    return sorted({p.resolve() for pattern in STAGE_FOLDERS for p in exp_dir.glob(pattern) if p.is_dir()})


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def clean(params_files: Sequence[str | Path], dry_run: bool = False) -> CleanReport:
    """Remove (or with `dry_run`, list) the stage folders that none of `params_files` refers to."""
    report = CleanReport()
    wanted: dict[Path, set[Path] | None] = {}  # None: leave the experiment alone
    for path in params_files:
        P = load_params(path)
        exp_dir = P.exp_dir.resolve()
        if not exp_dir.is_dir():
            continue
        try:
            folders = referenced(P)
        except TclibError as err:
            report.skipped.append(f"{exp_dir} ({path}): {err}")
            wanted[exp_dir] = None
            continue
        if folders is None:
            report.skipped.append(f"{exp_dir} ({path}): its frame cache is not complete; run 01_data_prep first")
            wanted[exp_dir] = None
        elif exp_dir not in wanted or wanted[exp_dir] is not None:
            wanted[exp_dir] = (wanted.get(exp_dir) or set()) | folders
    for exp_dir, folders in wanted.items():
        if folders is None:
            continue
        for folder in stage_folders(exp_dir):
            if folder in folders:
                report.kept.append(folder)
            elif made_by_earlier_rule(folder) or any(folder.is_relative_to(e) for e in report.earlier_rule):
                report.earlier_rule.append(folder)
            else:
                remove_folder(folder, dry_run, report)
    return report


def remove_folder(folder: Path, dry_run: bool, report: CleanReport) -> None:
    if folder.exists():  # not inside a folder removed just before
        size = folder_size(folder)
        report.removed.append((folder, size))
        if not dry_run:
            shutil.rmtree(folder)


def format_report(report: CleanReport, dry_run: bool) -> str:
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {folder} ({size / 2**20:.1f} MiB)" for folder, size in report.removed]
    lines += [f"skipped {reason}" for reason in report.skipped]
    lines += [f"kept {folder}: made by an earlier tclib (`tclib migrate` adopts it if a params file names it)"
              for folder in report.earlier_rule]
    lines.append(f"{verb} {len(report.removed)} stage folder(s), {report.freed / 2**20:.1f} MiB; "
                 f"kept {len(report.kept) + len(report.earlier_rule)}")
    return "\n".join(lines)

