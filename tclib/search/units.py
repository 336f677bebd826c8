"""What an index holds: units, each a whole video or a moment of one.

A whole video, and a clip of a params file's split, is sampled as the reference samples it (its
`clock` is "" or "sampler": a data set's start and end times are the reference sampler's seconds,
`int(fps)` frames each, and the paper's numbers depend on it). A moment of a user's video (segments,
shots) is `[start, end)` in seconds as a player shows them (`clock` "player"), fractional where the
source gives fractions (kept to the millisecond), its frames taken inside it at the student's rate
(tclib.data.frames.moment_frame_indices).

Sources: every file under a folder (recursively) that is a video, the files of a list, or a params
file's split (its clips, with the split's own segments). Units: whole videos; `segment_seconds`
(and `stride`) cut each video into moments to its real end; a shot file gives them as rows (video,
start, end) in seconds or frame numbers, as shot-boundary files give shots. A unit's file is identified by its path relative to the
collection's folder and its content signature, so a collection moved or copied is the same.

Each problem gets its outcome: a file that is not a video is skipped (and counted); a video that
cannot be opened, a shot of a video the collection does not have, or a shot after a video's end is a
failure (OUT/failures.csv, with the reason), and the rest goes on.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from ..data import Sampling, pad_frames, read_moment_frames, read_padded_frames
from ..data.frames import video_metadata
from ..data.pool import parallel_map
from ..data.readers.videos import VIDEO_EXTENSIONS
from ..errors import DataError, TclibError
from ..files import content_signature

log = logging.getLogger(__name__)

COLUMNS = ["key", "video_id", "path", "start", "end", "clock", "size", "sha256"]
CLOCKS = {"": "a whole video, sampled as the reference samples it",
          "sampler": "a data set's clip: start and end in the reference sampler's seconds (int(fps) frames each)",
          "player": "a moment: start and end in seconds as a player shows them"}
UnitRow: TypeAlias = Any  # a row of a units table from DataFrame.itertuples: a namedtuple of COLUMNS
MORE_VIDEO_EXTENSIONS = (".mpg", ".mpeg", ".ts", ".flv", ".3gp", ".wmv", ".ogv", ".mxf")
# how containers begin: (offset, bytes); a file of another extension is a video when it begins so
CONTAINER_MAGIC = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (8, b"AVI "), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),
                   (0, b"FLV"))


class CollectionError(TclibError):
    """A collection that cannot be indexed at all (no video in it, an unreadable list or shot file)."""


@dataclass
class Collection:
    """The units to index (a table of COLUMNS), and what was left out of it."""

    root: str  # the folder unit paths are relative to
    units: pd.DataFrame
    skipped: list[str] = field(default_factory=list)  # files that are not videos
    failures: dict[str, str] = field(default_factory=dict)  # unit key or file -> reason

    def absolute(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(self.root, path)


# --------------------------------------------------------------------------------------- sources


def is_video_file(path: str) -> bool:
    """A video extension, or the first bytes of a video container (mp4/mov, mkv/webm, avi, ogg, mpeg-ps, flv)."""
    if os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS + MORE_VIDEO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return any(head[offset:offset + len(magic)] == magic for offset, magic in CONTAINER_MAGIC)


def folder_videos(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(videos, other files) under `folder`, recursively, as paths relative to it, in sorted order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CollectionError(f"videos folder not found: {folder}")
    videos: list[str] = []
    others: list[str] = []
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        subdirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            (videos if is_video_file(path) else others).append(os.path.relpath(path, folder))
    return videos, others


def list_videos(list_file: str | os.PathLike) -> tuple[str, list[str]]:
    """(the list's folder, its video paths relative to it or absolute): one path a line, # comments."""
    list_file = Path(list_file)
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CollectionError(f"cannot read the list of videos {list_file}: {exc}") from exc
    paths = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not paths:
        raise CollectionError(f"{list_file} lists no video")
    return str(list_file.resolve().parent), paths


def video_id_of(path: str) -> str:
    """A video's id: its path relative to the collection, without the extension (POSIX separators)."""
    return Path(path).with_suffix("").as_posix()


def whole_videos(root: str, paths: list[str]) -> pd.DataFrame:
    """One unit per video: the whole of it."""
    rows = [(video_id_of(p), video_id_of(p), p, None, None, "") for p in paths]
    return identify(root, pd.DataFrame(rows, columns=COLUMNS[:6]))


def identify(root: str, table: pd.DataFrame) -> pd.DataFrame:
    """The units with their files' content signatures (size, sha256), each file read once."""
    signatures = {p: content_signature(p if os.path.isabs(p) else os.path.join(root, p))
                  for p in dict.fromkeys(table["path"])}
    table = table.copy()
    table["start"] = table["start"].astype("float64")
    table["end"] = table["end"].astype("float64")
    table["size"] = [signatures[p].get("size", -1) for p in table["path"]]
    table["sha256"] = [signatures[p].get("sha256", "") for p in table["path"]]
    return table[COLUMNS]


def split_units(P, split: str) -> Collection:
    """The clips of a params file's split (tclib.experiment.data): the experiment's own keys and segments."""
    from ..experiment.data import split_annotations, video_specs

    table = split_annotations(P, split)
    root = P.videos_dir or P.data_root
    rows = []
    for clip, spec in video_specs(table).items():
        path, start, end = (spec, None, None) if isinstance(spec, str) else spec
        rows.append((clip, table.video_id[table.clip_id == clip].iloc[0], os.path.relpath(path, root), start, end,
                     "" if start is None else "sampler"))
    return Collection(root, identify(root, pd.DataFrame(rows, columns=COLUMNS[:6])))


# --------------------------------------------------------------------------------------- moments


@dataclass(frozen=True)
class VideoLength:
    """A video's frame count and frame rate, as its container gives them."""

    frames: int
    fps: float

    @property
    def seconds(self) -> float:
        """How long a player shows it: frames / fps."""
        return self.frames / self.fps

    def frame_seconds(self, frame: float) -> float:
        """Where frame number `frame` (0 the first) starts, in seconds of the video's own frame rate."""
        return frame / self.fps


def probe(task: tuple[str, str]) -> tuple[str, VideoLength | None, str | None]:
    """(path, its VideoLength, None) or (path, None, why it cannot be opened or sampled)."""
    path, absolute = task
    try:
        frames, fps = video_metadata(absolute)
    except DataError as exc:
        return path, None, str(exc)
    if not (math.isfinite(fps) and fps > 0):
        return path, None, f"{absolute}: its frame rate cannot be read ({fps} fps), so no time in it can be located"
    if frames <= 0:
        return path, None, f"{absolute}: no frames to sample ({frames} frames at {fps} fps)"
    return path, VideoLength(frames, fps), None


def durations(collection: Collection, workers: int) -> dict[str, VideoLength]:
    """{path: length} of every video of the collection (read from the containers in worker processes);
    a video that cannot be opened becomes a failure."""
    tasks = [(p, collection.absolute(p)) for p in dict.fromkeys(collection.units["path"])]
    out = {}
    for path, length, reason in parallel_map(probe, tasks, workers, "read video lengths", min_bar=16):
        if reason is None:
            assert length is not None  # probe() gives a length or a reason
            out[path] = length
        else:
            collection.failures[path] = reason
    return out


def seconds_text(t: float) -> str:
    """Seconds as keys and labels write them: to the millisecond, no trailing zeros (12, 12.5, 600.601)."""
    return f"{t:.3f}".rstrip("0").rstrip(".")


def moment_key(video_id: str, start: float, end: float) -> str:
    return f"{video_id}@{seconds_text(start)}-{seconds_text(end)}"


def moment_row(video: UnitRow, start: float, end: float) -> tuple:
    """A units row of a moment [start, end) of `video` (a units row), its times kept to the millisecond."""
    start = round(float(start), 3)
    end = max(round(float(end), 3), start + 0.001)
    return (moment_key(video.video_id, start, end), video.video_id, video.path, start, end, "player", video.size,
            video.sha256)


def segment_starts(duration: float, seconds: float, stride: float) -> list[float]:
    """Where the moments of a video of `duration` s begin: every `stride` s while a whole moment fits, and
    one more ending with the video when the last would leave some of it out; [0] for a shorter video."""
    last = duration - seconds
    starts = [k * stride for k in range(int(math.floor(last / stride + 1e-9)) + 1)] if last > -1e-9 else [0.0]
    if last > starts[-1] + 1e-3:
        starts.append(last)
    return starts


def segment_units(collection: Collection, seconds: float, stride: float | None, workers: int) -> Collection:
    """Each video cut into moments of `seconds` every `stride` seconds (default: `seconds`) of its real
    time, the last one ending where the video ends; a video shorter than one moment is one moment, the
    whole of it."""
    if not seconds > 0 or (stride is not None and not stride > 0):
        raise CollectionError(f"segments must be longer and further apart than 0 s, got {seconds} s every {stride} s")
    stride = stride or seconds
    lengths = durations(collection, workers)
    rows = []
    for video in collection.units.itertuples(index=False):
        if video.path not in lengths:
            continue
        duration = lengths[video.path].seconds
        rows += [moment_row(video, start, min(start + seconds, duration))
                 for start in segment_starts(duration, seconds, stride)]
    return Collection(collection.root, pd.DataFrame(rows, columns=COLUMNS), collection.skipped, collection.failures)


def read_shots(shot_file: str | os.PathLike) -> list[tuple[str, float, float, int]]:
    """(video, start, end, line) of each row of a shot file: `video start end` in seconds, separated by
    tabs, commas or spaces; # comments and header lines (words where the times go) are skipped
    wherever they are."""
    rows = []
    try:
        text = Path(shot_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CollectionError(f"cannot read the shot file {shot_file}: {exc}") from exc
    dialect = "excel-tab" if "\t" in text else "excel"
    for n, fields in enumerate(csv.reader(text.splitlines(), dialect), start=1):
        fields = [f.strip() for f in (fields if len(fields) > 1 else (fields[0].split() if fields else []))]
        if not fields or fields[0].startswith("#") or is_header(fields):
            continue
        try:
            start, end = float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            raise CollectionError(f"line {n} of {shot_file} is not 'video start end' (seconds): {fields}") from None
        if not (0 <= start < end):
            raise CollectionError(f"line {n} of {shot_file}: a shot must have 0 <= start < end, got {start}, {end}")
        rows.append((fields[0], start, end, n))
    if not rows:
        raise CollectionError(f"{shot_file} holds no shot")
    return rows


def is_header(fields: list[str]) -> bool:
    """A line of column names: words (letters, digits after them, _ - . and spaces) where the times go."""
    return len(fields) >= 3 and all(re.fullmatch(r"[A-Za-z][\w .-]*", f) for f in fields[1:3])


class VideoNames:
    """The videos of a collection by the names a shot file may give: the path relative to the collection
    (with or without its extension), or a bare file name (with or without it) when only one video has it."""

    def __init__(self, units: pd.DataFrame) -> None:
        self.by_path: dict[str, UnitRow] = {}
        self.by_file: dict[str, list[UnitRow]] = {}
        for video in units.itertuples(index=False):
            for name in (Path(video.path).as_posix(), video.video_id):
                self.by_path[name] = video
            for name in {Path(video.path).name, Path(video.video_id).name}:
                self.by_file.setdefault(name, []).append(video)

    def find(self, name: str) -> tuple[UnitRow | None, str]:
        """(the video, "") or (None, why no single video has this name)."""
        name = Path(name).as_posix().removeprefix("./")
        if name in self.by_path:
            return self.by_path[name], ""
        candidates = self.by_file.get(name, []) if "/" not in name else []
        if len(candidates) == 1:
            return candidates[0], ""
        if candidates:
            paths = ", ".join(sorted(c.path for c in candidates))
            return None, f"the file name is ambiguous: {len(candidates)} videos have it ({paths}); give its path"
        return None, "no such video in the collection"


SHOT_UNITS = ("seconds", "frames")


def shot_units(collection: Collection, shot_file: str | os.PathLike, workers: int, unit: str = "seconds"
               ) -> Collection:
    """The shots of a shot file as moments [start, end) in seconds (a shot past its video's end cut at
    the end). Times are seconds, or with `unit` "frames" frame numbers (the end frame included, as
    TRECVID's master shot boundaries give them) converted with each video's own frame rate. A shot naming
    no single video of the collection (see VideoNames), or starting after its video ends, is a failure."""
    if unit not in SHOT_UNITS:
        raise CollectionError(f"shot times are in one of {SHOT_UNITS}, got {unit!r}")
    names = VideoNames(collection.units)
    lengths = durations(collection, workers)
    rows, seen = [], set()
    for name, first, last, line in read_shots(shot_file):
        video, why = names.find(name)
        where = f"{Path(shot_file).name} line {line}: shot {name} {first:g}-{last:g} {'s' if unit == 'seconds' else unit}"
        if video is None:
            collection.failures[f"{name}@{first:g}-{last:g}"] = f"{where}: {why}"
            continue
        if video.path not in lengths:
            continue  # the video itself failed
        length = lengths[video.path]
        start, end = (first, last) if unit == "seconds" else (length.frame_seconds(first),
                                                              length.frame_seconds(last + 1))
        if start >= length.seconds:
            collection.failures[moment_key(video.video_id, start, end)] = (
                f"{where}: starts after the video ends ({seconds_text(length.seconds)} s)")
            continue
        row = moment_row(video, start, min(end, length.seconds))
        if row[0] not in seen:
            seen.add(row[0])
            rows.append(row)
    return Collection(collection.root, pd.DataFrame(rows, columns=COLUMNS), collection.skipped, collection.failures)


@dataclass(frozen=True)
class Moments:
    """How a collection's videos are cut into moments: segments of `seconds` every `stride` seconds
    (default: `seconds`), or the shots of a shot file, its times in `shots_in` (seconds or frames)."""

    seconds: float | None = None
    stride: float | None = None
    shots: str | None = None
    shots_in: str = "seconds"

    def __post_init__(self) -> None:
        if self.seconds is not None and self.shots is not None:
            raise CollectionError("moments are segments (seconds) or shots (a shot file), not both")
        if self.stride is not None and self.seconds is None:
            raise CollectionError("a segment stride goes with segment seconds")

    def cut(self, collection: Collection, workers: int) -> Collection:
        if self.shots is not None:
            return shot_units(collection, self.shots, workers, self.shots_in)
        if self.seconds is not None:
            return segment_units(collection, self.seconds, self.stride, workers)
        return collection


def collection_of(videos: str | None = None, video_list: str | None = None, split: tuple | None = None,
                  moments: Moments | None = None, workers: int = 1) -> Collection:
    """The units of one source (a folder, a list file, or (params, split)), whole or cut into `moments`."""
    if sum(x is not None for x in (videos, video_list, split)) != 1:
        raise CollectionError("give exactly one source: a videos folder, a list of videos, or a params split")
    if split is not None:
        collection = split_units(*split)
    elif videos is not None:
        paths, others = folder_videos(videos)
        if not paths:
            raise CollectionError(f"no video under {videos} ({len(others)} other files skipped)")
        collection = Collection(str(Path(videos).resolve()), whole_videos(str(Path(videos).resolve()), paths), others)
        if others:
            log.info("%s: %d files that are not videos skipped, e.g. %s", videos, len(others), others[0])
    else:
        assert video_list is not None
        root, paths = list_videos(video_list)
        collection = Collection(root, whole_videos(root, paths))
    return moments.cut(collection, workers) if moments is not None else collection

def unit_frames(path: str, sampling: Sampling, start: float | None, end: float | None, clock: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """A unit's frames padded to max_frames, and their mask: a moment's at its real times, a whole video or
    a data set's clip as the reference samples it."""
    if clock == "player":
        if start is None or end is None:
            raise CollectionError(f"{path}: a moment without its start and end times")
        return pad_frames(read_moment_frames(path, sampling, start, end), sampling.max_frames)
    if start is None or pd.isna(start):
        return read_padded_frames(path, sampling)
    if end is None:
        raise CollectionError(f"{path}: a clip with a start time ({start}) but no end time")
    return read_padded_frames(path, sampling, int(start), int(end))
