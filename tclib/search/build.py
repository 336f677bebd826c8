"""`tclib index`: every unit of a collection encoded into one vector by a trained student.

Units are encoded in chunks of `shard_size`, each chunk's frames decoded in worker processes a few
batches ahead of the model (memory holds a few batches of frames, whatever the collection's size), its
vectors written as one shard named by the fingerprint of the model and of its units. So a rerun on the
same sources encodes only the units that are new or whose file changed, an interrupted run resumes
with the chunks it had finished (and ends with the same index as an uninterrupted run), and units whose
file is gone are left out of the index (their shard stays: nothing encoded is deleted). Over several
processes (`torchrun`, `--gpus N`) each encodes every N-th chunk; the first writes the tables, the
manifest and the FAISS index when all are done.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import Sampling
from ..data.pool import parallel_map
from ..distributed import barrier, is_main, world
from ..errors import DataError
from ..lock import experiment_lock
from ..progress import progress
from ..stages import fingerprint
from ..train import resolve_device
from . import vectors
from .model import StudentSpec, spec_from_record
from .store import (
    FAISS,
    finished_shards,
    read_manifest,
    unit_identity,
    write_failures,
    write_manifest,
    write_shard,
    write_units,
)
from .units import Collection, CollectionError, unit_frames

log = logging.getLogger(__name__)

SHARD_SIZE = 1024


@dataclass
class BuildReport:
    """What a build did: units indexed (encoded now, found done), failed, skipped; how fast."""

    out: Path
    units: int = 0
    encoded: int = 0
    reused: int = 0
    failed: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    decode_seconds: float = 0.0  # waiting for decoded frames
    model_seconds: float = 0.0  # in the model
    index: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> str:
        rate = self.encoded / self.seconds if self.seconds else 0.0
        frames = self.frames / self.seconds if self.seconds else 0.0
        busy = self.decode_seconds + self.model_seconds or 1.0
        return (f"{self.out}: {self.units} units indexed ({self.encoded} encoded now, {self.reused} found done), "
                f"{self.failed} failed, {self.skipped} files skipped; {rate:.1f} videos/s, {frames:.0f} frames/s "
                f"(decoding {100 * self.decode_seconds / busy:.0f}%, model {100 * self.model_seconds / busy:.0f}%)"
                + (f"; {vectors.IndexChoice.of_record(self.index).describe()}" if self.index else ""))


def decode_unit(task: tuple[str, float | None, float | None, str, Sampling]) -> tuple[np.ndarray, np.ndarray] | str:
    """A unit's frames padded to max_frames and their mask, or why it cannot be read."""
    path, start, end, clock, sampling = task
    try:
        return unit_frames(path, sampling, start, end, clock)
    except DataError as exc:
        return str(exc)


@dataclass(frozen=True)
class IndexJob:
    """What `tclib index` builds: the index folder, the units, the student that encodes them, and how
    (batch, decoding processes, units per shard, device), which FAISS index (`kind`, within
    `ram_per_video` bytes, tuned on the text vectors of `tune_captions` when given: tclib.search.vectors),
    and what the manifest records as its source."""

    out: Path
    collection: Collection
    spec: StudentSpec
    batch_size: int = 64
    workers: int = 4
    shard_size: int = SHARD_SIZE
    device: str = "auto"
    kind: str = "auto"
    ram_per_video: int = vectors.RAM_PER_VIDEO
    source: dict = field(default_factory=dict)
    tune_captions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "tune_captions", tuple(self.tune_captions or ()))


def build_index(job: IndexJob, lock: bool = True) -> BuildReport:
    """Encode the job's units with its student into its index folder (see tclib.search.store). One run
    per folder (LockedError naming the holder; `lock=False` where a launcher holds it); an index of
    another model is refused (ModelMismatch naming the fields)."""
    if lock and world()[1] == 1:
        with experiment_lock(job.out):
            return _build(job)
    return _build(job)


def _start(job: IndexJob) -> tuple[list[str], dict[str, tuple[str, int]], dict[str, str], BuildReport]:
    """What every build begins with: the model checked against the folder's, the units' identities, the
    vectors and failures the folder already holds, and the report."""
    manifest = read_manifest(job.out)
    if manifest is not None:
        spec_from_record(manifest["model"]).check_same(job.spec, str(job.out))
    identities = [unit_identity(u) for u in job.collection.units.itertuples(index=False)]
    done, failed = _finished(job.out, job.spec.fingerprint)
    report = BuildReport(job.out, skipped=len(job.collection.skipped))
    report.reused = sum(ident in done for ident in identities)
    return identities, done, failed, report


def _build(job: IndexJob) -> BuildReport:
    started = time.perf_counter()
    identities, done, failed, report = _start(job)
    pending = [i for i, ident in enumerate(identities) if ident not in done and ident not in failed]
    chunks = [pending[i:i + job.shard_size] for i in range(0, len(pending), job.shard_size)]
    rank, processes = world()
    mine = chunks[rank::processes]
    log.info("%s: %d units, %d to encode (%d chunks, %d here), %d found done", job.out, len(identities),
             len(pending), len(chunks), len(mine), len(identities) - len(pending))
    if mine:
        Encoding.of(job, identities, report).run(mine)
    barrier()
    report.seconds = time.perf_counter() - started
    if is_main():
        _finish(job, identities, report)
    barrier()
    return report


def _finished(out: Path, model: str) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
    """{unit identity: (shard, row)} of every vector encoded in `out`, and {identity: why} of failures."""
    done: dict[str, tuple[str, int]] = {}
    failed: dict[str, str] = {}
    for shard, record in finished_shards(out, model):
        for row, ident in enumerate(record["rows"]):
            done.setdefault(ident, (shard, row))
        for ident, reason in record["failed"].items():
            failed.setdefault(ident, reason)
    return done, failed


@dataclass
class Encoding:
    """One process's encoding of its chunks: the job, the student on its device, the report and the bar."""

    job: IndexJob
    identities: list[str]
    student: Any
    device: torch.device
    report: BuildReport

    @classmethod
    def of(cls, job: IndexJob, identities: list[str], report: BuildReport) -> Encoding:
        device = resolve_device(job.device)
        return cls(job, identities, job.spec.load().to(device), device, report)

    def run(self, chunks: list[list[int]]) -> None:
        bar = progress(total=sum(map(len, chunks)), desc=f"index {self.job.out.name}", unit="video")
        try:
            for chunk in chunks:
                self.chunk(chunk, bar)
        finally:
            bar.close()

    def chunk(self, chunk: list[int], bar: Any) -> None:
        """Decode a chunk's units (a few batches ahead), encode them a batch at a time, write its shard."""
        job, report = self.job, self.report
        units = job.collection.units.iloc[chunk]
        tasks = [(job.collection.absolute(u.path), None if pd.isna(u.start) else float(u.start),
                  None if pd.isna(u.end) else float(u.end), u.clock, job.spec.frame_sampling)
                 for u in units.itertuples(index=False)]
        results = parallel_map(decode_unit, tasks, job.workers, "decode", window=2 * job.batch_size,
                               min_bar=len(tasks) + 1)
        rows: list[int] = []
        parts, failed, batch = [], {}, []
        waited = time.perf_counter()
        for i, result in zip(chunk, results, strict=True):
            report.decode_seconds += time.perf_counter() - waited
            if isinstance(result, str):
                failed[self.identities[i]] = result
                log.warning("index: %s: %s", job.collection.units.key.iloc[i], result)
            else:
                batch.append((i, *result))
            if len(batch) == job.batch_size:
                parts.append(self.encode(batch))
                rows += [i for i, _, _ in batch]
                batch = []
            bar.update(1)
            bar.set_postfix(frames_per_s=f"{report.frames / max(time.perf_counter() - report.started, 1e-9):.0f}",
                            refresh=False)
            waited = time.perf_counter()
        if batch:
            parts.append(self.encode(batch))
            rows += [i for i, _, _ in batch]
        encoded = np.concatenate(parts) if parts else np.zeros((0, 0), np.float16)
        shard = fingerprint(job.spec.fingerprint, [self.identities[i] for i in chunk])
        write_shard(job.out, shard, job.spec.fingerprint, [self.identities[i] for i in rows], encoded, failed)
        report.encoded += len(rows)

    @torch.no_grad()
    def encode(self, batch: list) -> np.ndarray:
        started = time.perf_counter()
        frames = torch.from_numpy(np.stack([f for _, f, _ in batch])).to(self.device)
        mask = torch.from_numpy(np.stack([m for _, _, m in batch])).to(self.device)
        video, _ = self.student.encode_video(frames, mask)
        self.report.frames += int(mask.sum())
        self.report.model_seconds += time.perf_counter() - started
        return video.float().cpu().numpy().astype(np.float16)


def _finish(job: IndexJob, identities: list[str], report: BuildReport) -> None:
    """The units table (the collection's order), failures, the FAISS index and, last, the manifest."""
    out, collection, spec = job.out, job.collection, job.spec
    done, failed = _finished(out, spec.fingerprint)
    where = [done.get(ident) for ident in identities]
    keep = [w is not None for w in where]
    units = collection.units[keep].reset_index(drop=True)
    units["shard"] = [w[0] for w in where if w is not None]
    units["row"] = [w[1] for w in where if w is not None]
    failures = dict(collection.failures)
    failures.update({key: failed.get(ident, "not encoded") for key, ident, w in
                     zip(collection.units.key, identities, where, strict=True) if w is None})
    report.units, report.failed = len(units), len(failures)
    write_failures(out, failures)
    if units.empty:
        raise CollectionError(f"{out}: nothing to index, every unit failed (see {out / 'failures.csv'})")
    dim = int(np.load(out / "shards" / f"{units.shard[0]}.npy", mmap_mode="r").shape[1])
    previous = read_manifest(out)
    choice = vectors.choose(len(units), dim, job.kind, job.ram_per_video)
    if previous and (out / FAISS).is_file() and _same_units(out, units) and previous["index"]["kind"] == choice.kind:
        report.index = previous["index"]
    else:
        write_units(out, units)
        queries = None if not job.tune_captions or choice.kind == "exact" else text_vectors(spec, job.tune_captions)
        report.index = vectors.build(out, units, dim, choice, queries=queries)
    write_manifest(out, {"model": dataclasses.asdict(spec), "model_fingerprint": spec.fingerprint,
                         "root": collection.root, "source": job.source, "units": len(units), "dim": dim,
                         "index": report.index, "failed": len(failures), "skipped": len(collection.skipped)})
    log.info(report.summary())


@torch.no_grad()
def text_vectors(spec: StudentSpec, captions: Sequence[str], batch: int = 256) -> np.ndarray:
    """The student's float32 text vectors of `captions`."""
    student, tokenizer = spec.load(), spec.tokenizer()
    return np.concatenate([student.encode_text(tokenizer(list(captions[i:i + batch]))).float().numpy()
                           for i in range(0, len(captions), batch)])


def _same_units(out: Path, units: pd.DataFrame) -> bool:
    """Whether units.csv already holds exactly this table (the FAISS index then holds its vectors)."""
    path = out / "units.csv"
    return path.is_file() and path.read_text() == units.to_csv(index=False)


def import_bigfile(out: str | Path, folder: str | Path, spec: StudentSpec, kind: str = "auto",
                   shard_size: int = SHARD_SIZE, ram_per_video: int = vectors.RAM_PER_VIDEO) -> BuildReport:
    """An index of video vectors made elsewhere, in TeachCLIP's BigFile layout (tclib.search.bigfile),
    searched with `spec`'s student (whose text vectors they must match): each id a unit, each row
    L2-normalized and stored as float16."""
    from ..files import content_signature
    from .bigfile import read_bigfile

    folder = Path(folder)
    ids, rows = read_bigfile(folder)
    signature = content_signature(folder / "feature.bin")
    units = pd.DataFrame({"key": ids, "video_id": ids, "path": "", "start": np.nan, "end": np.nan, "clock": "",
                          "size": signature["size"], "sha256": signature["sha256"]})
    job = IndexJob(Path(out), Collection(str(folder.resolve()), units), spec, shard_size=shard_size, kind=kind,
                   ram_per_video=ram_per_video, source={"bigfile": str(folder.resolve())})
    with experiment_lock(job.out):
        identities, done, _, report = _start(job)
        todo = [i for i, identity in enumerate(identities) if identity not in done]  # whatever shards made them
        for start in range(0, len(todo), shard_size):
            picked = todo[start:start + shard_size]
            chunk = [identities[i] for i in picked]
            part = np.asarray(rows[picked], dtype=np.float32)
            part = part / np.linalg.norm(part, axis=1, keepdims=True).clip(min=1e-12)
            write_shard(job.out, fingerprint(spec.fingerprint, chunk), spec.fingerprint, chunk, part, {})
            report.encoded += len(chunk)
        _finish(job, identities, report)
    return report
