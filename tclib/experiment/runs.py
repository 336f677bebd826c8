"""The runs of an experiment: the students a params file trains, named as `runs` names them.

A run name is a base run, optionally followed by the teachers that teach it:

    clip4clip-meanP          CLIP4Clip, mean pooling of the frame features
    clip4clip-seqTransf      CLIP4Clip, a temporal transformer over the frame features
    teachclip-coarse         TeachCLIP with AFA, coarse-grained teaching only
    teachclip                TeachCLIP with AFA, coarse- and fine-grained teaching
    teachclip:xclip+ts2net   ... taught by X-CLIP and TS2-Net (default: every teacher of `teachers`)

`parse_run` reads a name into a RunSpec, in this one place; `tclib.params` uses it to check `runs`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParamsError

# The base runs: (label, temporal head, AFA, coarse-grained teaching, fine-grained teaching).
BASES: dict[str, tuple[str, str, bool, bool, bool]] = {
    "clip4clip-meanP": ("CLIP4Clip (meanP)", "meanP", False, False, False),
    "clip4clip-seqTransf": ("CLIP4Clip (seqTransf)", "seqTransf", False, False, False),
    "teachclip-coarse": ("TeachCLIP (coarse only)", "seqTransf", True, True, False),
    "teachclip": ("TeachCLIP (coarse + fine)", "seqTransf", True, True, True),
}
# How tables name the teachers (a teacher without an entry is named by its registry name).
TEACHER_NAMES = {"xclip": "X-CLIP", "ts2net": "TS2-Net", "xpool": "X-Pool"}


@dataclass(frozen=True)
class RunSpec:
    """One student run: what it is built from and how it is taught."""

    name: str  # as `runs` spells it
    label: str  # as the tables name it
    temporal: str  # "meanP" or "seqTransf"
    afa: bool  # AFA aggregates the frames (else: the temporal head's mean)
    coarse: bool  # taught by its teachers' in-batch similarities
    fine: bool  # AFA's weights taught by the teachers' frame relevance
    teachers: tuple[str, ...] | None  # named after ':'; None: every teacher of the params

    def teachers_of(self, params_teachers: list[str]) -> list[str]:
        """The teachers that teach this run under a params file's `teachers` (none for CLIP4Clip)."""
        if not self.coarse:
            return []
        return list(self.teachers) if self.teachers is not None else list(params_teachers)


def parse_run(name: str) -> RunSpec:
    """The RunSpec of a run name; ParamsError for an unknown base or teachers after a CLIP4Clip run."""
    base, _, taught_by = name.partition(":")
    if base not in BASES:
        raise ParamsError(f"may only name {tuple(BASES)}, a TeachCLIP run optionally followed by "
                          f"':teacher+teacher' (e.g. teachclip:xclip+ts2net)")
    label, temporal, afa, coarse, fine = BASES[base]
    if taught_by and not coarse:
        raise ParamsError(f"{name!r}: only teachclip runs take ':teacher+teacher'")
    teachers = tuple(taught_by.split("+")) if taught_by else None
    if teachers is not None:
        names = " + ".join(TEACHER_NAMES.get(t, t) for t in teachers)
        label = f"TeachCLIP ({names})" if fine else f"TeachCLIP coarse only ({names})"
    return RunSpec(name, label, temporal, afa, coarse, fine, teachers)


def run_problems(runs: list, teachers: list | None) -> list[str]:
    """What is wrong with a params file's `runs` (one phrase each): names that do not parse, teachers
    after ':' that are not in `teachers` (None: teachers could not be read), a TeachCLIP run with no
    teacher, a run named twice."""
    if not all(isinstance(run, str) for run in runs):
        return ["must be a list of run names"]
    problems = []
    for run in runs:
        try:
            spec = parse_run(run)
        except ParamsError as err:
            problems.append(str(err))
            continue
        if teachers is None or not spec.coarse:
            continue
        if spec.teachers is not None and any(t not in teachers for t in spec.teachers):
            problems.append(f"{run!r}: the teachers after ':' must each be one of teachers {teachers}")
        elif spec.teachers is None and not teachers:
            problems.append(f"{run!r}: is taught by every teacher of teachers, and teachers is empty")
    if len(set(runs)) != len(runs):
        problems.append("must not name a run twice")
    return problems


def teacher_label(name: str) -> str:
    """How tables name a teacher's own row: "X-CLIP (teacher)"."""
    return f"{TEACHER_NAMES.get(name, name)} (teacher)"
