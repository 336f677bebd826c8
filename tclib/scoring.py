"""Teacher scoring: a teacher's in-batch logits and frame relevance, from a feature cache or online.

A teacher's features depend on one text or one video at a time, so the expensive towers can run
once per caption and per video of the training set (`write_teacher_features`), and a training
batch's logits and relevance then come from the cached features (`CachedTeacherScores`): a few
small matrix products instead of the teachers' towers in every step. `OnlineTeacherScores` runs the
teachers' full forward on every batch instead, as the reference training code does; both give the
same losses up to the cache's float16 rounding.

The cache is a folder: one float16 `.npy` file per feature (integer features such as a frame mask
keep their type), written and read a batch of rows at a time with file I/O, so its size in memory
is bounded by a batch whatever the size of the data set, and a `manifest.json` saying what it was computed from (teacher, checkpoint
hash, backbone, frame sampling, data set, split, captions and videos). A cache whose manifest does
not match the run is refused with an error naming the field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.npyrows import NpyRows
from .errors import CheckpointError
from .files import temporary_path
from .models.teachers import Features, Teacher
from .precision import full_float32
from .progress import progress

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@torch.no_grad()
def encode_texts(encode, tokens: torch.Tensor, batch_size: int, device: torch.device, desc: str = "texts"):
    """Apply `encode(tokens)` (a tensor or a dict of tensors) in batches; results on the CPU."""
    return _concat(list(iter_encoded_texts(encode, tokens, batch_size, device, desc)))


@torch.no_grad()
def encode_videos(encode, frames, mask, batch_size: int, device: torch.device, desc: str = "videos",
                  rows: np.ndarray | None = None):
    """Apply `encode(frames, mask)` over uint8 frames (N, F, 3, H, W) (an array or a frame source's view)
    in batches: every row, or only `rows` in their order."""
    return _concat(list(iter_encoded_videos(encode, frames, mask, batch_size, device, desc, rows)))


@torch.no_grad()
def iter_encoded_texts(encode, tokens: torch.Tensor, batch_size: int, device: torch.device, desc: str = "texts"):
    """`encode(tokens)` batch by batch, each result moved to the CPU."""
    for start in progress(range(0, len(tokens), batch_size), desc=desc, unit="batch", leave=False):
        yield _cpu(encode(tokens[start:start + batch_size].to(device)))


@torch.no_grad()
def iter_encoded_videos(encode, frames, mask, batch_size: int, device: torch.device, desc: str = "videos",
                        rows: np.ndarray | None = None):
    """`encode(frames, mask)` batch by batch over `rows` (default: all), each result on the CPU."""
    rows = np.arange(len(frames)) if rows is None else np.asarray(rows)
    for start in progress(range(0, len(rows), batch_size), desc=desc, unit="batch", leave=False):
        chunk = rows[start:start + batch_size]
        batch = torch.from_numpy(np.array(frames[chunk])).to(device)  # rows read from disk by a view
        batch_mask = torch.from_numpy(np.array(mask[chunk])).to(device)
        yield _cpu(encode(batch, batch_mask))


# ------------------------------------------------------------------------------------ the cache


@dataclass
class TeacherFeatures:
    """A teacher's cached features of a training split (NpyRows: `array[rows]` reads those rows):
    text row i = caption i; video row j = frame-source row video_rows[j] (only the videos the split
    uses are encoded)."""

    text: dict[str, NpyRows]
    video: dict[str, NpyRows]
    video_rows: np.ndarray
    manifest: dict[str, Any]


def write_teacher_features(directory: str | Path, teacher: Teacher, tokens: torch.Tensor, frames, mask, video_rows,
                           batch_size: int, device: torch.device, manifest: dict[str, Any]) -> TeacherFeatures:
    """Encode every caption and the frame-source rows `video_rows` with `teacher` into a cache folder.

    Batches are written straight into the files, so memory holds one batch at a time. The
    folder appears complete or not at all: it is written under a name of its own beside its final
    name (removed if writing fails) and renamed at the end. Nothing already at `directory` is ever
    removed: a finished cache there is kept, anything else there is an error naming it.
    """
    directory = Path(directory)
    if directory.exists() and not (directory / MANIFEST).is_file():
        raise CheckpointError(f"{directory} is in the way of a teacher feature cache (it has no {MANIFEST}); "
                              "move it away")
    partial = temporary_path(directory, "partial")
    partial.mkdir(parents=True)
    try:
        teacher.eval().to(device)
        video_rows = np.asarray(video_rows, dtype=np.int64)
        _write_batches(partial, "text", iter_encoded_texts(teacher.encode_text, tokens, batch_size, device,
                                                           desc=f"{teacher.name} texts"), len(tokens))
        _write_batches(partial, "video", iter_encoded_videos(teacher.encode_video, frames, mask, batch_size,
                                                             device, desc=f"{teacher.name} videos", rows=video_rows),
                       len(video_rows))
        np.save(partial / "video_rows.npy", video_rows)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        if not directory.exists():  # another run may have finished the same cache meanwhile: keep its
            os.replace(partial, directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # this call's own temporary folder, if still there
    return read_teacher_features(directory, manifest)


def _write_batches(directory: Path, side: str, batches, count: int) -> None:
    """Write a stream of feature dicts (first dim = batch) into `<side>.<key>.npy`, `count` rows each."""
    arrays: dict[str, NpyRows] = {}
    row = 0
    for features in batches:
        for key, value in features.items():
            if key not in arrays:
                dtype = np.float16 if value.is_floating_point() else value.numpy().dtype
                arrays[key] = NpyRows.create(directory / f"{side}.{key}.npy", (count, *value.shape[1:]), dtype)
            arrays[key].write_rows(row, value.numpy())
        row += len(next(iter(features.values())))
    if row != count:
        raise RuntimeError(f"{directory}: wrote {row} {side} rows, expected {count}")
    for array in arrays.values():
        array.flush()
        array.close()


def read_teacher_features(directory: str | Path, expected: dict[str, Any] | None = None) -> TeacherFeatures:
    """Open a cache folder (rows read from disk as batches ask for them; see data/npyrows.py). With
    `expected`, every field of it must equal the manifest's."""
    directory = Path(directory)
    if not (directory / MANIFEST).is_file():
        raise CheckpointError(f"{directory}: not a teacher feature cache (no {MANIFEST})")
    manifest = json.loads((directory / MANIFEST).read_text())
    for field, value in (expected or {}).items():
        value = json.loads(json.dumps(value, default=str))  # compare as the manifest stores it
        if manifest.get(field) != value:
            raise CheckpointError(f"{directory}: the teacher feature cache was made for {field} = "
                                  f"{manifest.get(field)!r}, this run has {value!r}; delete the folder to rebuild it")
    features: dict[str, dict[str, NpyRows]] = {"text": {}, "video": {}}
    for path in sorted(directory.glob("*.*.npy")):
        side, key = path.stem.split(".", 1)
        features[side][key] = NpyRows(path)
    return TeacherFeatures(features["text"], features["video"], np.load(directory / "video_rows.npy"), manifest)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def strings_sha256(values: list[str]) -> str:
    return hashlib.sha256("\n".join(map(str, values)).encode()).hexdigest()


def cache_size(features: TeacherFeatures) -> dict[str, int]:
    """Bytes per caption and per video of a cache, and its total size on disk."""
    per_caption = sum(a[0].nbytes for a in features.text.values())
    per_video = sum(a[0].nbytes for a in features.video.values())
    return {"bytes_per_caption": per_caption, "bytes_per_video": per_video,
            "bytes": sum(a.nbytes for a in [*features.text.values(), *features.video.values()])}


# ---------------------------------------------------------------------------------- the scorers


class TeacherRows:
    """Reads the cached features of a batch's captions and videos for each teacher (as stored: float16
    stays float16), on the CPU: what the training loader adds to each batch as `teacher_rows`, in its
    worker processes, so that a training step never waits for a file."""

    def __init__(self, names: list[str], features: list[TeacherFeatures]) -> None:
        self.names = names
        self.features = features
        # frame-source row -> row of the video cache (-1: not encoded)
        self.positions = []
        for f in features:
            position = torch.full((int(f.video_rows.max()) + 1,), -1, dtype=torch.long)
            position[torch.from_numpy(f.video_rows)] = torch.arange(len(f.video_rows))
            self.positions.append(position)

    def __call__(self, batch: dict) -> dict[str, list[dict[str, Features]]]:
        captions = torch.as_tensor(batch["caption_index"]).cpu().numpy()
        videos = torch.as_tensor(batch["video_index"]).cpu()
        rows = []
        for name, features, position in zip(self.names, self.features, self.positions, strict=True):
            cached = position[videos.clamp(max=len(position) - 1)]
            if (videos >= len(position)).any() or (cached < 0).any():
                raise ValueError(f"{name}: the batch has videos whose teacher features were not cached")
            rows.append({"text": _rows(features.text, captions), "video": _rows(features.video, cached.numpy())})
        return {"teacher_rows": rows}


class CachedTeacherScores:
    """In-batch teacher logits and frame relevance, computed from cached features.

    `teachers[k]` scores with `features[k]`; a batch is given by the indices of its captions (rows
    of the text cache) and of their videos (rows of the frame source), and carries the rows of the
    caches as `teacher_rows` when the training loader read them (`rows`), else they are read here.
    The scores are computed in float32 whatever the caller runs under (autocast, TF32).
    """

    def __init__(self, teachers: list[Teacher], features: list[TeacherFeatures]) -> None:
        if len(teachers) != len(features):
            raise ValueError(f"{len(teachers)} teachers but {len(features)} feature caches")
        self.teachers = [t.eval() for t in teachers]
        self.rows = TeacherRows([t.name for t in teachers], features)

    @torch.no_grad()
    def __call__(self, batch: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        rows = batch["teacher_rows"] if "teacher_rows" in batch else self.rows(batch)["teacher_rows"]
        logits, relevance = [], []
        for teacher, features in zip(self.teachers, rows, strict=True):
            device = next(teacher.parameters()).device
            text, video = (_widened(features[side], device) for side in ("text", "video"))
            with full_float32(device.type):
                logits.append(teacher.similarity(text, video))
                relevance.append(teacher.relevance(text, video))
        return logits, relevance


class OnlineTeacherScores:
    """In-batch teacher logits and frame relevance from each teacher's full forward on the batch,
    in eval mode, as the reference training code runs its teachers, in float32 whatever the caller
    runs under (autocast, TF32)."""

    def __init__(self, teachers: list[Teacher]) -> None:
        self.teachers = [t.eval() for t in teachers]

    @torch.no_grad()
    def __call__(self, batch: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, relevance = [], []
        for teacher in self.teachers:
            teacher.eval()  # the student's trainer may have switched every module to training mode
            with full_float32(batch["tokens"].device.type):  # teachers in float32
                text = teacher.encode_text(batch["tokens"])
                video = teacher.encode_video(batch["frames"], batch["frame_mask"])
                logits.append(teacher.similarity(text, video))
                relevance.append(teacher.relevance(text, video))
        return logits, relevance


def _rows(features: dict[str, NpyRows], rows: np.ndarray) -> Features:
    """Rows of cached features as CPU tensors, in the cache's dtypes."""
    return {key: torch.from_numpy(np.asarray(array[rows])) for key, array in features.items()}


def _widened(features: Features, device: torch.device) -> Features:
    """Features on `device`, float16 widened to float32."""
    features = {key: value.to(device, non_blocking=True) for key, value in features.items()}
    return {key: value.float() if value.is_floating_point() else value for key, value in features.items()}


def _cpu(features):
    if torch.is_tensor(features):
        return features.cpu()
    return {k: v.cpu() for k, v in features.items()}


def _concat(parts: list):
    """Concatenate batches of tensors, or of dicts of tensors, on the CPU."""
    if torch.is_tensor(parts[0]):
        return torch.cat(parts)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
