"""Reader for the MSR-VTT annotation layout used by CLIP4Clip and TeachCLIP.

Files (under one root directory)::

    MSRVTT_data.json           {"videos": [...], "sentences": [{"caption", "video_id", "sen_id"}]}
    MSRVTT_train.9k.csv        column video_id (the 9k training split; 7k: MSRVTT_train.7k.csv)
    MSRVTT_JSFUSION_test.csv   columns key, vid_key, video_id, sentence (the 1k-A test split)
    videos/ | MSRVTT_Videos/ | VideoData/ | .   <video_id>.mp4

Training rows come from the sentences of ``MSRVTT_data.json`` whose video is listed in the
training csv, in the order of the json file (one row per caption, as CLIP4Clip's training loader
unfolds them). Test rows are the rows of the test csv, one caption per video.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from tclib.data.files import read_json
from tclib.errors import DataError

__all__ = ["VIDEO_DIR_CANDIDATES", "check_videos", "read_msrvtt", "relevance_table", "resolve_videos_dir"]

log = logging.getLogger(__name__)

VIDEO_DIR_CANDIDATES: tuple[str, ...] = ("videos", "MSRVTT_Videos", "VideoData")
COLUMNS = ["video_id", "caption", "split", "video_path"]


def _read_json(path: Path):
    return read_json(path, "annotation file")


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse csv {path}: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path} has no column {missing[0]!r} (columns: {list(df.columns)})")
    return df


def resolve_videos_dir(root: str | os.PathLike, videos_dir: str | os.PathLike | None = None) -> Path:
    """``videos_dir`` if given, else the first existing of root/videos, root/MSRVTT_Videos,
    root/VideoData, else root itself."""
    if videos_dir is not None:
        return Path(videos_dir)
    root = Path(root)
    for name in VIDEO_DIR_CANDIDATES:
        if (root / name).is_dir():
            return root / name
    return root


def _check_captions(df: pd.DataFrame, path: Path, text_col: str, id_col: str | None = None) -> None:
    """Raise DataError on the first empty or whitespace-only caption."""
    empty = df[text_col].astype(str).str.strip() == ""
    if empty.any():
        row = df[empty].iloc[0]
        where = f" (sen_id {row[id_col]})" if id_col is not None and id_col in row else ""
        raise DataError(f"empty caption for {row['video_id']}{where} in {path}")


def read_msrvtt(
    root: str | os.PathLike,
    split: str,
    train_csv: str = "MSRVTT_train.9k.csv",
    test_csv: str = "MSRVTT_JSFUSION_test.csv",
    expand_sentences: bool = True,
    videos_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Read one split of MSR-VTT.

    Args:
        root: directory holding the annotation files.
        split: ``"train"`` or ``"test"``.
        train_csv, test_csv: file names (relative to ``root``) or paths of the split csv files.
        expand_sentences: train only; one row per caption (True) or one row per video with its
            first caption (False).
        videos_dir: where the ``<video_id>.mp4`` files are; found under ``root`` when None.

    Returns:
        DataFrame with columns video_id, caption, split, video_path (all str). Video paths are
        given whether or not the file exists; see :func:`check_videos`.
    """
    root = Path(root)
    vdir = resolve_videos_dir(root, videos_dir)
    if split == "train":
        df = read_json_captions(root / "MSRVTT_data.json", root / train_csv, expand_sentences)
    elif split == "test":
        df = read_csv_captions(root / test_csv)
    else:
        raise DataError(f"unknown MSR-VTT split {split!r} (expected 'train' or 'test')")
    df = df.reset_index(drop=True)
    df["split"] = split
    df["video_path"] = [str(vdir / f"{v}.mp4") for v in df["video_id"]]
    log.info("MSR-VTT %s: %d captions of %d videos from %s", split, len(df), df["video_id"].nunique(), root)
    return df[COLUMNS]


def read_csv_captions(path: Path) -> pd.DataFrame:
    """(video_id, caption) rows of an evaluation csv with columns video_id and sentence (MSR-VTT's
    JSFusion test file, VATEX's split files)."""
    raw = _read_csv(path, ["video_id", "sentence"])
    raw["video_id"] = raw["video_id"].str.strip()
    if (raw["video_id"] == "").any():
        line = int((raw["video_id"] == "").to_numpy().nonzero()[0][0]) + 2
        raise DataError(f"empty video_id on line {line} of {path}")
    _check_captions(raw, path, "sentence")
    return pd.DataFrame({"video_id": raw["video_id"], "caption": raw["sentence"]})


def read_json_captions(json_path: Path, csv_path: Path, expand_sentences: bool = True) -> pd.DataFrame:
    """(video_id, caption) rows: the ``sentences`` of an MSR-VTT-style json (MSRVTT_data.json,
    VATEX_data.json) whose video is listed in a split csv, in json order; with
    ``expand_sentences=False`` one row per video with its first caption."""
    ids = _read_csv(csv_path, ["video_id"])["video_id"].str.strip()
    ids = ids[ids != ""]
    data = _read_json(json_path)
    if not isinstance(data, dict):
        raise DataError(f"{json_path} must hold a JSON object, found {type(data).__name__}")
    if "sentences" not in data:
        raise DataError(f"{json_path.name} has no 'sentences' ({json_path})")
    sentences = data["sentences"]
    if not isinstance(sentences, list) or not all(isinstance(s, dict) for s in sentences):
        raise DataError(f"'sentences' in {json_path} must be a list of objects")
    sent = pd.DataFrame(sentences)
    for key in ("caption", "video_id"):
        absent = sent[key].isna() if key in sent.columns else pd.Series(True, index=sent.index)
        if absent.any():
            raise DataError(f"sentence {int(absent.to_numpy().nonzero()[0][0])} of {json_path} has no {key!r}")
    if "sen_id" not in sent.columns:
        sent["sen_id"] = range(len(sent))
    sent["video_id"] = sent["video_id"].astype(str)
    sent["caption"] = sent["caption"].astype(str)

    wanted = set(ids)
    sent = sent[sent["video_id"].isin(wanted)]
    _check_captions(sent, json_path, "caption", "sen_id")
    have = set(sent["video_id"])
    missing = [v for v in ids if v not in have]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(
            f"training video {missing[0]}{more} listed in {csv_path} has no sentence in {json_path}"
        )
    if expand_sentences:
        return sent[["video_id", "caption"]]
    first = sent.drop_duplicates("video_id", keep="first").set_index("video_id")["caption"]
    unique_ids = list(dict.fromkeys(ids))
    return pd.DataFrame({"video_id": unique_ids, "caption": [first[v] for v in unique_ids]})


def check_videos(df: pd.DataFrame) -> list[str]:
    """Paths in ``df['video_path']`` (each once, in order) that are not existing files."""
    if "video_path" not in df.columns:
        raise DataError("table has no 'video_path' column")
    paths = dict.fromkeys(df["video_path"].astype(str))
    return [p for p in paths if not os.path.isfile(p)]


def relevance_table(root: str | os.PathLike) -> pd.DataFrame:
    """The ground-truth caption -> relevant seconds table of a synthetic data set.

    Columns video_id, caption, sen_id, relevant_seconds (list of int), duration (and scene).
    """
    path = Path(root) / "relevance.json"
    data = _read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path} must hold a JSON list, found {type(data).__name__}")
    required = ["video_id", "caption", "sen_id", "relevant_seconds", "duration"]
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"entry {i} of {path} is not an object")
        for key in required:
            if key not in row:
                raise DataError(f"entry {i} of {path} has no {key!r}")
    return pd.DataFrame(data, columns=required + [c for c in (data[0] if data else {}) if c not in required])
