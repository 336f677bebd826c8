"""`tclib migrate [params files]`: adopt the stage folders made before identities were location-independent.

Until then a data file was identified by its resolved absolute path (and a checkpoint also by its size
and modification time), so every stage's fingerprint depended on where the project and the data lay.
For each params file this finds the finished folders of that rule, in place or after a move, and
adopts each into the folder its stage has now: renamed (nothing copied, nothing deleted), its record
rewritten with today's inputs and `adopted_from` naming the old folder. Stage by stage, in the order
the pipeline runs, since each stage's earlier inputs hold the earlier fingerprints of those before it:

- the frame cache (it had no record then): by the earlier fingerprint, else as the one such cache
  whose manifest holds the same clips, segments, sampling and storage;
- the backbone, the teachers, their feature caches and the students: by the earlier inputs'
  fingerprint, else as the one record of that rule whose inputs match, file identities compared by
  file name and size (after a move the paths and times differ).

A stage that matches several folders adopts none: the report names them. Decoding on the fly
(`frame_cache: false`) left no frame folder to recognise: those stages are found in place only.
The rest of tclib knows only today's identities.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import DecodedFrames, FrameCache
from .data.framecache import cache_params, read_index, read_manifest, segments_of, stored_params, video_sources
from .errors import DataError, FolderInTheWay
from .experiment.data import (
    Data,
    Identities,
    backbone_inputs,
    backbone_stage,
    clip_source,
    data_of,
    frames_stage,
    image_size_of,
    read_splits,
    sampling_of,
    train_fingerprint,
    video_specs,
)
from .experiment.runs import parse_run
from .experiment.students import student_inputs, student_stage
from .experiment.teachers import features_key, prepared_teachers, teacher_inputs, teacher_stage
from .files import write_text
from .lock import experiment_lock
from .params import Params, load_params
from .scoring import MANIFEST
from .stages import (
    RECORD,
    Stage,
    StageInputs,
    fingerprint,
    finished_records,
    made_by_earlier_rule,
    read_record,
)

log = logging.getLogger(__name__)


@dataclass
class Adoption:
    key: str  # "frames", "backbone", "teachers/xclip/seed0", "teacher-features/xclip/seed0", "students/<run>/seed0"
    earlier: Path  # the folder as the earlier rule named it
    now: Path  # the stage's folder now


@dataclass
class MigrationReport:
    adopted: list[Adoption] = field(default_factory=list)  # (with a dry run: what would be)
    problems: list[str] = field(default_factory=list)  # stages with several candidate folders, experiments left alone


def migrate(params_files: Sequence[str | Path], dry_run: bool = False) -> MigrationReport:
    """Adopt (or with `dry_run`, list) the earlier-rule folders of every stage of `params_files`."""
    report = MigrationReport()
    for path in params_files:
        P = load_params(path)
        if P.exp_dir.is_dir():
            with experiment_lock(P.exp_dir):
                Migration(P, dry_run, report).run()
    return report


def format_report(report: MigrationReport, dry_run: bool) -> str:
    verb = "would adopt" if dry_run else "adopted"
    lines = [f"{verb} {a.key}: {a.earlier} -> {a.now.name}" for a in report.adopted]
    lines += report.problems
    lines.append(f"{verb} {len(report.adopted)} stage folder(s)" + (f"; {len(report.problems)} problem(s)"
                                                                      if report.problems else ""))
    return "\n".join(lines)


@dataclass
class Migration:
    """One experiment's stages, adopted in the pipeline's order."""

    P: Params
    dry_run: bool
    report: MigrationReport

    def run(self) -> None:
        P = self.P
        train, test = read_splits(P)
        videos = video_specs(train, test)
        stage = frames_stage(P, videos)
        frames = self.frames(videos, stage)
        if frames is None:
            self.report.problems.append(f"{P.exp_dir}: no complete frame cache of these videos (of either rule); "
                                        "nothing adopted")
            return
        cache, earlier_frames = frames
        clip_pretrained = str(backbone_stage(P).directory / "clip.pt") if P.pretrain_steps > 0 else P.clip_pretrained
        data = data_of(P, train, test, cache, stage, clip_pretrained)
        earlier = Identities(earlier_frames, train_fingerprint(earlier_frames, data.train), self.earlier_backbone())
        if P.pretrain_steps > 0:
            self.stage("backbone", backbone_stage(P), self.earlier_backbone_inputs())
        today = prepared_teachers(P, data)
        teachers = {(name, seed): self.teacher(data, earlier, name, seed) for name in P.teachers for seed in P.seeds}
        for run in P.runs:
            if run not in P.student_checkpoints:
                spec = parse_run(run)
                for seed in P.seeds:
                    taught_by = {t: teachers[(t, seed)] for t in spec.teachers_of(P.teachers)}
                    self.stage(f"students/{run}/seed{seed}", student_stage(P, data, today, run, seed),
                               student_inputs(P, earlier, taught_by, spec, seed))

    # ------------------------------------------------------------------------------------ frames

    def frames(self, videos: dict, stage: Stage) -> tuple[FrameCache | DecodedFrames, str] | None:
        """The frame source (its earlier cache adopted) and the frames' earlier fingerprint."""
        P = self.P
        computed = frames_fingerprint(P, videos, image_size_of(P.clip_model))
        if not P.frame_cache:
            return DecodedFrames(videos, sampling_of(P), P.decode_workers), computed
        if stage.finished():
            return FrameCache(stage.directory), read_record(stage.directory).get("info", {}).get("adopted_from") or computed
        params = cache_params(sampling_of(P), P.frame_cache_format, P.jpeg_quality)
        named = stage.base / computed
        candidates = [named] if _holds(named, videos, params) else \
            [folder for folder in sorted(stage.base.glob("*/")) if _holds(folder, videos, params)]
        folder = self.one("frames", stage.base, candidates)
        if folder is None:
            return None
        earlier = folder.name
        if not self.dry_run:
            cache = FrameCache(folder)
            self.adopt("frames", folder, stage, videos=len(cache), failed=len(cache.failed))
            folder = stage.directory
        else:
            self.report.adopted.append(Adoption("frames", folder, stage.directory))
        return FrameCache(folder), earlier

    # --------------------------------------------------------------------- backbone, teachers, students

    def earlier_clip_source(self) -> Any:
        """clip_pretrained as the earlier rule identified it: a local file by its path, size and time."""
        source = clip_source(self.P)
        return earlier_file_identity(self.P.clip_pretrained) if isinstance(source, dict) else source

    def earlier_backbone_inputs(self) -> StageInputs:
        return dataclasses.replace(backbone_inputs(self.P), clip_pretrained=self.earlier_clip_source())

    def earlier_backbone(self) -> str:
        if self.P.pretrain_steps > 0:
            return self.earlier_backbone_inputs().fingerprint
        return fingerprint(self.P.clip_model, self.earlier_clip_source())

    def teacher(self, data: Data, earlier: Identities, name: str, seed: int) -> str:
        """Adopt the teacher's folder and its feature cache; its earlier fingerprint, as the records of the
        students it taught name it."""
        P = self.P
        inputs = teacher_inputs(P, earlier, name, seed)
        if checkpoint := P.teacher_checkpoints.get(name, ""):
            inputs = dataclasses.replace(inputs, checkpoint=earlier_file_identity(checkpoint))
        stage = teacher_stage(P, data, name, seed)
        found = self.stage(f"teachers/{name}/seed{seed}", stage, inputs)
        key = features_key(earlier)
        named = (found or stage.directory) / "features" / key  # as the earlier rule named it
        lies = (found if found is not None and self.dry_run else stage.directory) / "features" / key  # now
        own = stage.directory / "features" / features_key(data.ids)
        if not (own / MANIFEST).is_file() and (lies / MANIFEST).is_file():
            self.report.adopted.append(Adoption(f"teacher-features/{name}/seed{seed}", named, own))
            if not self.dry_run:
                adopt_features(lies, own, earlier.backbone, data.ids.backbone)
        if found is not None:
            return found.name
        return read_record(stage.directory).get("info", {}).get("adopted_from") or Stage(stage.base, inputs).fingerprint

    def stage(self, key: str, stage: Stage, earlier_inputs: StageInputs | Mapping[str, Any]) -> Path | None:
        """The folder of the earlier rule that holds this unfinished stage, adopted (returned by the name
        it had); None when the stage is finished (its record rewritten as today's if it was of that rule)
        or no single folder holds it."""
        if self.dry_run and any(a.now == stage.directory for a in self.report.adopted):
            return None  # one folder for several seeds (a frozen student), adopted once
        if stage.finished():
            record = read_record(stage.directory)
            if "format" not in record:  # a fingerprint that read no path or time: recorded again as today's
                self.report.adopted.append(Adoption(key, stage.directory, stage.directory))
                if not self.dry_run:
                    stage.finish(**record.get("info", {}))
            return None
        named = Stage(stage.base, earlier_inputs)
        wanted = named.inputs
        if made_by_earlier_rule(named.directory):
            candidates = [named.directory]
        else:
            candidates = [folder for folder, record in finished_records(stage.base)
                          if "format" not in record and same_earlier_inputs(record.get("inputs"), wanted)]
        folder = self.one(key, stage.base, candidates)
        if folder is not None:
            self.adopt(key, folder, stage)
        return folder

    # ------------------------------------------------------------------------------------ helpers

    def one(self, key: str, base: Path, candidates: list[Path]) -> Path | None:
        """The one candidate folder; several are a problem reported (none adopted), none is None."""
        if len(candidates) > 1:
            self.report.problems.append(
                f"{base}: {len(candidates)} folders of an earlier tclib hold the stage {key} "
                f"({', '.join(c.name for c in candidates)}); none adopted: move all but one out of {base} and run "
                "`tclib migrate` again")
            return None
        return candidates[0] if candidates else None

    def adopt(self, key: str, earlier: Path, stage: Stage, **info: Any) -> None:
        """Rename `earlier` to the stage's folder and rewrite its record with today's inputs."""
        self.report.adopted.append(Adoption(key, earlier, stage.directory))
        if self.dry_run:
            return
        adopt_folder(earlier, stage.directory)
        stage.finish(**{**read_record(stage.directory).get("info", {}), **info, "adopted_from": earlier.name})
        log.info("%s: adopted %s as %s", stage.base, earlier.name, stage.fingerprint)


def adopt_features(earlier: Path, own: Path, earlier_backbone: str, backbone: str) -> None:
    """A teacher's feature cache under its earlier key moved to today's; its manifest then names the
    backbone as it is identified now."""
    adopt_folder(earlier, own)
    manifest = json.loads((own / MANIFEST).read_text())
    if manifest.get("backbone") == earlier_backbone:
        manifest["backbone"] = backbone
        write_text(own / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    log.info("%s: adopted the feature cache %s as %s", own.parent, earlier.name, own.name)


def adopt_folder(earlier: Path, directory: Path) -> None:
    """Rename a finished folder to `directory` (an empty folder there, left by a run that did nothing yet,
    is replaced; anything else there is an error naming it). Nothing is copied, nothing deleted."""
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    if directory.exists():
        raise FolderInTheWay(f"{directory} is in the way of the finished run {earlier}; move one of them away")
    os.rename(earlier, directory)


# ------------------------------------------------------------------------ the earlier identity rule


def earlier_file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """A file's identity in the earlier records: its resolved path, size and modification time."""
    path = Path(path).resolve()
    if not path.is_file():
        return {"path": str(path), "missing": True}
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def same_earlier_inputs(recorded: Any, wanted: Any) -> bool:
    """Earlier inputs equal, a file identity ({"path", "size", ...}) matching one of the same file name
    and size wherever it lay."""
    if isinstance(recorded, dict) and isinstance(wanted, dict):
        if "path" in recorded and "path" in wanted and ("size" in recorded or "missing" in recorded):
            return (Path(recorded["path"]).name == Path(wanted["path"]).name
                    and recorded.get("size") == wanted.get("size") and recorded.get("missing") == wanted.get("missing"))
        return recorded.keys() == wanted.keys() and all(same_earlier_inputs(recorded[k], wanted[k]) for k in recorded)
    return recorded == wanted


def frames_fingerprint(P: Params, videos: dict, image_size: int) -> str:
    """The frame cache's earlier fingerprint: the sampling, every clip's resolved file and segment, the
    synthetic set's parameters, a JPEG cache's quality."""
    resolved = {clip: [str(Path(v if isinstance(v, str) else v[0]).resolve()), *([] if isinstance(v, str) else v[1:])]
                for clip, v in videos.items()}
    synthetic = P.values(["synthetic_train_videos", "synthetic_test_videos", "synthetic_frame_size",
                          "synthetic_seed"]) if P.synthetic else None
    storage = [P.values(["frame_cache_format", "jpeg_quality"])] if P.frame_cache_format != "raw" else []
    return fingerprint(P.values(["max_frames", "framerate", "slice_framepos"]), image_size, resolved, synthetic,
                       *storage)


def _holds(folder: Path, videos: dict, params: dict) -> bool:
    """A complete frame cache without a stage record, of these clips, segments, sampling and storage."""
    if not (folder / "manifest.json").is_file() or (folder / RECORD).is_file():
        return False
    try:
        manifest = read_manifest(folder)
        ids, sources = video_sources(videos, str(folder))
        return (bool(manifest.get("complete")) and stored_params(manifest) == params
                and read_index(folder) == ids and manifest.get("segments", {}) == segments_of(ids, sources))
    except DataError:
        return False
