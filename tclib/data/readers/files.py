"""The annotation files of every layout read with errors that name the file: where they lie (the root
or its Annotations/ folder), JSON, pickles, text lists, csv files of captions, and the table of rows a
layout returns."""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from tclib.errors import DataError
from tclib.files import read_json

log = logging.getLogger(__name__)

# one row of a split: video_id, caption (None for a video without captions), start, end (None: the whole video)
Row: TypeAlias = tuple[str, str | None, int | None, int | None]

ANNOTATIONS_FOLDER = "Annotations"


def locate(root: Path, name: str | os.PathLike) -> Path:
    """``root/name`` or ``root/Annotations/name``, whichever exists (an absolute name as is)."""
    candidates = [root / name, root / ANNOTATIONS_FOLDER / name]
    for path in candidates:
        if path.is_file():
            return path
    if Path(name).is_absolute():
        raise DataError(f"annotation file not found: {name}")
    raise DataError(f"annotation file not found: {candidates[0]} (nor {candidates[1]})")


def load_json(path: Path) -> Any:
    return read_json(path, "annotation file")


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` (pickles can run code: read only files from a source you trust)."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    except Exception as exc:  # UnpicklingError, EOFError, and whatever a corrupt stream raises
        raise DataError(f"cannot unpickle {path}: {type(exc).__name__}: {exc}") from exc


def read_lines(path: Path, strip: bool = True) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a text file; the text is stripped, or with
    ``strip=False`` only loses its line end."""
    try:
        with open(path, encoding="utf-8") as f:
            return [(n, line.strip() if strip else line.rstrip("\r\n"))
                    for n, line in enumerate(f, start=1) if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def read_id_list(path: Path) -> list[str]:
    """Video ids, one per line, in file order (blank lines skipped)."""
    return [text for _, text in read_lines(path)]


def nonempty_text(value: Any, where: str) -> str:
    """``value`` as a caption; DataError when it is not a string or is blank."""
    if not isinstance(value, str):
        raise DataError(f"{where}: caption must be a string, found {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: empty caption")
    return value


def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
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


def check_captions(df: pd.DataFrame, path: Path, text_col: str, id_col: str | None = None) -> None:
    """Raise DataError on the first empty or whitespace-only caption."""
    empty = df[text_col].astype(str).str.strip() == ""
    if empty.any():
        row = df[empty].iloc[0]
        where = f" (sen_id {row[id_col]})" if id_col is not None and id_col in row else ""
        raise DataError(f"empty caption for {row['video_id']}{where} in {path}")


def csv_captions(path: Path) -> pd.DataFrame:
    """(video_id, caption) rows of an evaluation csv with columns video_id and sentence (MSR-VTT's
    JSFusion test file, VATEX's split files)."""
    raw = read_csv(path, ["video_id", "sentence"])
    raw["video_id"] = raw["video_id"].str.strip()
    if (raw["video_id"] == "").any():
        line = int((raw["video_id"] == "").to_numpy().nonzero()[0][0]) + 2
        raise DataError(f"empty video_id on line {line} of {path}")
    check_captions(raw, path, "sentence")
    return pd.DataFrame({"video_id": raw["video_id"], "caption": raw["sentence"]})


def json_captions(json_path: Path, csv_path: Path, expand_sentences: bool = True) -> pd.DataFrame:
    """(video_id, caption) rows: the ``sentences`` of an MSR-VTT-style json (MSRVTT_data.json,
    VATEX_data.json) whose video is listed in a split csv, in json order; with
    ``expand_sentences=False`` one row per video with its first caption."""
    ids = read_csv(csv_path, ["video_id"])["video_id"].str.strip()
    ids = ids[ids != ""]
    data = load_json(json_path)
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
    check_captions(sent, json_path, "caption", "sen_id")
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


def rows_table(rows: Sequence[Row]) -> pd.DataFrame:
    """Rows (video_id, caption, start, end) as a DataFrame with nullable integer times."""
    df = pd.DataFrame(rows, columns=["video_id", "caption", "start", "end"], dtype=object)
    df["start"] = pd.array(df["start"].tolist(), dtype="Int64")
    df["end"] = pd.array(df["end"].tolist(), dtype="Int64")
    return df


def warn_uncaptioned(ids: list[str], captioned: Mapping[str, Any], list_path: Path, ann_path: Path) -> None:
    missing = [v for v in dict.fromkeys(ids) if v not in captioned]
    if missing:
        log.warning(
            "%d videos listed in %s have no captions in %s and are skipped (as the reference does), e.g. %s",
            len(missing), list_path, ann_path, missing[0],
        )
