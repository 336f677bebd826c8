"""Every stage folder a params file reads or writes, by a readable key: what `tclib clean` keeps and
what the notebooks read the training histories from."""

from __future__ import annotations

from pathlib import Path

from ..params import Params
from ..scoring import MANIFEST
from ..stages import RECORD
from .data import Data, backbone_stage
from .students import student_stage
from .teachers import prepared_teachers


def stage_plan(P: Params, data: Data) -> dict[str, Path]:
    """{key: folder}: "frames", "backbone", "teachers/xclip/seed0", "teacher-features/xclip/seed0",
    "students/teachclip/seed0", ..."""
    plan = {"frames": P.exp_dir / "frames" / data.ids.frames}
    if P.pretrain_steps > 0:
        plan["backbone"] = backbone_stage(P).directory
    teachers = prepared_teachers(P, data)
    for (name, seed), teacher in teachers.items():
        plan[f"teachers/{name}/seed{seed}"] = teacher.directory
        if P.teacher_mode == "cached":
            plan[f"teacher-features/{name}/seed{seed}"] = teacher.features
    for run in P.runs:
        if run not in P.student_checkpoints:
            for seed in P.seeds:
                plan[f"students/{run}/seed{seed}"] = student_stage(P, data, teachers, run, seed).directory
    return plan


def found_stages(P: Params, data: Data) -> dict[str, Path | None]:
    """{key of stage_plan: the folder that holds the finished stage, or None}: what a rerun finds done."""
    found: dict[str, Path | None] = {"frames": getattr(data.cache, "cache_dir", None)}
    for key, folder in stage_plan(P, data).items():
        if key.startswith("teacher-features/"):
            found[key] = folder if (folder / MANIFEST).is_file() else None
        elif key != "frames":
            found[key] = folder if (folder / RECORD).is_file() else None
    return found
