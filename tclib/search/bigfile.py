"""TeachCLIP's BigFile layout, as its `utils/bigfile.py` and `evaluation.py` read features:

    <dir>/feature.bin   float32 rows, one per id, row after row (native byte order)
    <dir>/id.txt        the ids, one per line (BigFile also splits on spaces: an id holds no whitespace)
    <dir>/shape.txt     "N D"

`export_split` writes, for a params file's test split and a trained student, the video features, the
query features and the ground-truth file that TeachCLIP's evaluation.py reads (`<query id>\\t<video id>`
per line, queries in order): its evaluation of them gives tclib's text-to-video metrics.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataError, ParamsError
from ..files import atomic_path, write_text

WHITESPACE = re.compile(r"\s")


def check_ids(ids: list[str], where: str) -> None:
    """DataError naming the ids BigFile cannot hold (empty, whitespace) or that repeat."""
    bad = [i for i in ids if not i or WHITESPACE.search(i)]
    if bad:
        shown = ", ".join(repr(i) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(f"{where}: BigFile ids cannot be empty or hold whitespace: {shown}")
    repeated = [i for i, count in Counter(ids).items() if count > 1]
    if repeated:
        raise DataError(f"{where}: BigFile ids must be distinct, {repeated[0]!r} repeats")


def write_bigfile(folder: str | Path, ids: list[str], vectors: np.ndarray) -> Path:
    """Write a BigFile folder: `ids` (checked) and their float32 rows."""
    folder = Path(folder)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise DataError(f"{folder}: {len(ids)} ids for vectors of shape {vectors.shape}")
    check_ids(ids, str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "feature.bin") as tmp:
        vectors.tofile(tmp)
    write_text(folder / "id.txt", "\n".join(ids) + "\n")
    write_text(folder / "shape.txt", f"{len(ids)} {vectors.shape[1]}\n")
    return folder


def read_bigfile(folder: str | Path) -> tuple[list[str], np.ndarray]:
    """(ids, float32 (N, D) rows, mapped from the file: memory holds what is read of them) of a BigFile
    folder; DataError naming the file that disagrees."""
    folder = Path(folder)
    try:
        n, dim = map(int, (folder / "shape.txt").read_text().split()[:2])
        text = (folder / "id.txt").read_text().strip()
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder}: not a BigFile folder (shape.txt 'N D', id.txt): {exc}") from exc
    ids = text.split("\n") if len(text.split("\n")) == n else text.split(" ")
    if len(ids) != n:
        raise DataError(f"{folder / 'id.txt'}: {len(ids)} ids, shape.txt says {n}")
    size = (folder / "feature.bin").stat().st_size if (folder / "feature.bin").is_file() else -1
    if size != n * dim * 4:
        raise DataError(f"{folder / 'feature.bin'}: {size} bytes, shape.txt says {n} x {dim} float32")
    if n == 0:  # an empty file cannot be mapped
        return ids, np.zeros((0, dim), dtype=np.float32)
    return ids, np.memmap(folder / "feature.bin", dtype=np.float32, mode="r", shape=(n, dim))  # rows read when used


def write_ground_truth(path: str | Path, pairs: list[tuple[str, str]]) -> Path:
    """`<query id>\\t<video id>` per line, as TeachCLIP's evaluation.py reads its gt file."""
    write_text(path, "".join(f"{q}\t{v}\n" for q, v in pairs))
    return Path(path)


def export_index(index_folder: str | Path, out: str | Path) -> Path:
    """An index's unit vectors as a BigFile (ids: the unit keys; float16 stored, float32 written)."""
    from .store import ShardVectors, read_manifest, read_units

    if read_manifest(Path(index_folder)) is None:
        raise DataError(f"{index_folder} is not a finished index (no manifest.json)")
    units = read_units(Path(index_folder))
    stored = ShardVectors(Path(index_folder), units)
    return write_bigfile(out, list(units.key), stored.take(np.arange(len(stored))))


def export_split(P, run: str | None, seed: int | None, out: str | Path, device: str = "cpu") -> Path:
    """A trained student's features of the params' test split, as TeachCLIP's evaluation.py reads them:
    `out/videos/` (ids: the clips), `out/queries/` (ids: q0, q1, ... in the split's order) and
    `out/gt.txt`. Features are computed as tclib's evaluation computes them (float32)."""
    import torch

    from ..evaluate import video_features
    from ..experiment.data import prepared_data, test_set
    from ..experiment.students import load_student
    from ..experiment.teachers import prepared_teachers
    from ..scoring import encode_texts
    from .model import student_spec

    data = prepared_data(P)
    spec = student_spec(P, run, seed, data)  # a ParamsError when the data is not prepared
    if data is None:
        raise ParamsError(f"the data of {P.exp} is not prepared: run its 01_data_prep (or tclib reproduce) first")
    test = test_set(P, data)
    student = load_student(P, data, prepared_teachers(P, data), spec.run, spec.seed)
    on = torch.device(device)
    video = video_features(student, test, P.eval_batch_size, on).numpy()
    text = encode_texts(student.encode_text, test.tokens, P.eval_batch_size, on).numpy()
    out = Path(out)
    queries = [f"q{i}" for i in range(len(text))]
    write_bigfile(out / "videos", list(test.video_ids), video)
    write_bigfile(out / "queries", queries, text)
    write_ground_truth(out / "gt.txt", [(q, test.video_ids[v]) for q, v in zip(queries, test.caption_video, strict=True)])
    return out
