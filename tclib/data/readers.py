"""Annotation readers for every data set of the paper, behind one interface.

:func:`read_annotations` returns, for any data set and split, a table with the same columns:

``video_id``
    the video's id as the annotation files spell it.
``caption``
    one query: a sentence (MSR-VTT, MSVD, VATEX) or a paragraph, i.e. all captions of a video
    joined with single spaces (DiDeMo, ActivityNet: video-paragraph retrieval). ``None`` only for
    gallery videos of the ``teachclip`` layout that no query points to.
``split``
    the split the row was read for.
``start``, ``end``
    the segment, in whole seconds, that the frame sampler reads (nullable ``Int64``; ``<NA>``
    when the whole video is used).
``clip_id``
    the key under which the clip's frames are cached: ``video_id``, or
    ``"<video_id>@<start>-<end>"`` when there is a segment.
``video_path``
    the video file (see :class:`VideoIndex`); returned whether or not it exists, so that
    ``tclib data check`` can report missing files.

Layouts (annotation files may also sit in an ``Annotations/`` folder under the root):

=============  ==========================================================================
msrvtt         ``MSRVTT_data.json``, ``MSRVTT_train.9k.csv`` (7k: ``MSRVTT_train.7k.csv``),
               ``MSRVTT_JSFUSION_test.csv``; splits train, test
msvd           ``train_list.txt``, ``val_list.txt``, ``test_list.txt``, ``raw-captions.pkl``;
               splits train, val, test
didemo         ``{train,val,test}_list.txt``, ``{train,val,test}_data.json``; splits train,
               val, test
activitynet    ``train_ids.json``, ``train.json``, ``val_ids.json``, ``val_1.json``; splits
               train, test (= val_1; ``val`` and ``val_1`` are accepted)
vatex          ``VATEX_data.json``, ``VATEX_train.csv``, ``VATEX_val.csv``,
               ``VATEX_test.csv``; splits train, val, test
teachclip      ``VideoSet/<set>.txt``, ``QuerySet/<set>-query.txt``, ``Annotations/<gt>.txt``;
               one split per ``VideoSet`` file
=============  ==========================================================================

Videos are looked up under the root in ``videos/``, ``MSRVTT_Videos/``, ``VideoData/``,
``MSVD_Videos/``, ``YouTubeClips/``, ``DiDeMo_Videos/``, ``Activity_Videos/``, ``Videos/``
(each searched recursively) and the root itself, or in ``videos_dir`` when given.

Behaviour of the reference data loaders (CLIP4Clip, TeachCLIP) that is kept on purpose:

* DiDeMo: the per-caption moment times in the json are not used; every paragraph spans the
  whole video as the fixed segment 0-31 s (the annotation tool truncated videos to 30 s).
* ActivityNet: the caption timestamps are not used; the segment is 0 to ``ceil(duration)``.
* ActivityNet video files are named ``v_<id>.<ext>`` in the TeachCLIP layout and ``<id>.<ext>``
  (without the ``v_`` of the annotation keys) in the CLIP4Clip layout; both are found.
* ``teachclip`` layout: a ``VideoSet`` file whose path contains ``didemo`` gets the 0-31 s
  segment, as the reference video loader decides it from the path.

Where the reference silently drops a video (DiDeMo, ActivityNet: a listed video without captions
or without a video file), the video file stays in the table so that it can be reported, and a
listed video without captions is dropped with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from tclib.errors import DataError
from tclib.files import read_json

__all__ = [
    "COLUMNS",
    "PAPER_COUNTS",
    "READERS",
    "VIDEO_EXTENSIONS",
    "VIDEO_FOLDERS",
    "ActivityNetReader",
    "AnnotationReader",
    "DiDeMoReader",
    "MsrvttReader",
    "MsvdReader",
    "SplitCounts",
    "TeachclipReader",
    "VatexReader",
    "VideoIndex",
    "coerce_options",
    "get_reader",
    "read_annotations",
]

log = logging.getLogger(__name__)

COLUMNS: list[str] = ["video_id", "caption", "split", "start", "end", "clip_id", "video_path"]

# Folders under a data set root that the public repositories and download guides put videos in.
VIDEO_FOLDERS: tuple[str, ...] = (
    "videos",
    "MSRVTT_Videos",
    "VideoData",
    "MSVD_Videos",
    "YouTubeClips",
    "DiDeMo_Videos",
    "Activity_Videos",
    "Videos",
)
# Extensions tried after ``<video_id>``, in this order; matched case-insensitively.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
ANNOTATIONS_FOLDER = "Annotations"


# ----------------------------------------------------------------------------------------------
# Published split sizes
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitCounts:
    """Numbers of videos and captions of one split as published; ``None`` where unverified."""

    videos: int | None
    captions: int | None
    source: str
    note: str = ""


# Keys are data set name -> count key (see AnnotationReader.counts_key).
# Left out on purpose, because they could not be checked against a paper or a split file:
# the caption counts of MSVD (about 40 sentences per video; the totals quoted in later papers
# were not verified), the caption count of the MSR-VTT full test csv, and every VATEX number:
# TeachCLIP ships its own VATEX_{train,val,test}.csv, whose sizes neither its README nor its
# configs state (the split commonly used elsewhere has 25,991 / 1,500 / 1,500 videos with 10
# English captions each).
PAPER_COUNTS: dict[str, dict[str, SplitCounts]] = {
    "msrvtt": {
        # 20 sentences per video in MSRVTT_data.json (200K sentences for 10K videos, MSR-VTT paper).
        "train": SplitCounts(9000, 180_000, "JSFusion 1k-A split: 9,000 training videos x 20 captions"),
        "train-7k": SplitCounts(
            7010, 140_200, "MSR-VTT full split train + val (6,513 + 497 videos) x 20 captions"
        ),
        "test": SplitCounts(1000, 1000, "JSFusion 1k-A test: 1,000 videos, one caption each"),
        "test-full": SplitCounts(2990, None, "MSR-VTT full split test: 2,990 videos"),
    },
    "msvd": {
        "train": SplitCounts(1200, None, "MSVD split of Venugopalan et al. (collaborative-experts lists)"),
        "val": SplitCounts(100, None, "MSVD split of Venugopalan et al. (collaborative-experts lists)"),
        "test": SplitCounts(670, None, "MSVD split of Venugopalan et al. (collaborative-experts lists)"),
    },
    "didemo": {
        # One paragraph per video, so captions == videos.
        "train": SplitCounts(
            8395,
            8395,
            "DiDeMo split (Hendricks et al. 2017)",
            "the train_list.txt distributed by collaborative-experts / CLIP4Clip lists 8,392 videos",
        ),
        "val": SplitCounts(1065, 1065, "DiDeMo split (Hendricks et al. 2017; collaborative-experts lists)"),
        "test": SplitCounts(1004, 1004, "DiDeMo split (Hendricks et al. 2017; collaborative-experts lists)"),
    },
    "activitynet": {
        # One paragraph per video, so captions == videos.
        "train": SplitCounts(10009, 10009, "ActivityNet Captions train (Krishna et al. 2017)"),
        "test": SplitCounts(4917, 4917, "ActivityNet Captions val_1 (Krishna et al. 2017)"),
    },
}


# ----------------------------------------------------------------------------------------------
# File helpers
# ----------------------------------------------------------------------------------------------


def _locate(root: Path, name: str | os.PathLike) -> Path:
    """``root/name`` or ``root/Annotations/name``, whichever exists (an absolute name as is)."""
    candidates = [root / name, root / ANNOTATIONS_FOLDER / name]
    for path in candidates:
        if path.is_file():
            return path
    if Path(name).is_absolute():
        raise DataError(f"annotation file not found: {name}")
    raise DataError(f"annotation file not found: {candidates[0]} (nor {candidates[1]})")


def _load_json(path: Path) -> Any:
    return read_json(path, "annotation file")


def _load_pickle(path: Path) -> Any:
    """Unpickle ``path`` (pickles can run code: read only files from a source you trust)."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    except Exception as exc:  # UnpicklingError, EOFError, and whatever a corrupt stream raises
        raise DataError(f"cannot unpickle {path}: {type(exc).__name__}: {exc}") from exc


def _read_lines(path: Path, strip: bool = True) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a text file; the text is stripped, or with
    ``strip=False`` only loses its line end."""
    try:
        with open(path, encoding="utf-8") as f:
            return [(n, line.strip() if strip else line.rstrip("\r\n"))
                    for n, line in enumerate(f, start=1) if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _read_id_list(path: Path) -> list[str]:
    """Video ids, one per line, in file order (blank lines skipped)."""
    return [text for _, text in _read_lines(path)]


def _nonempty_text(value: Any, where: str) -> str:
    """``value`` as a caption; DataError when it is not a string or is blank."""
    if not isinstance(value, str):
        raise DataError(f"{where}: caption must be a string, found {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: empty caption")
    return value


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


def _check_captions(df: pd.DataFrame, path: Path, text_col: str, id_col: str | None = None) -> None:
    """Raise DataError on the first empty or whitespace-only caption."""
    empty = df[text_col].astype(str).str.strip() == ""
    if empty.any():
        row = df[empty].iloc[0]
        where = f" (sen_id {row[id_col]})" if id_col is not None and id_col in row else ""
        raise DataError(f"empty caption for {row['video_id']}{where} in {path}")


def _csv_captions(path: Path) -> pd.DataFrame:
    """(video_id, caption) rows of an evaluation csv with columns video_id and sentence (MSR-VTT's
    JSFusion test file, VATEX's split files)."""
    raw = _read_csv(path, ["video_id", "sentence"])
    raw["video_id"] = raw["video_id"].str.strip()
    if (raw["video_id"] == "").any():
        line = int((raw["video_id"] == "").to_numpy().nonzero()[0][0]) + 2
        raise DataError(f"empty video_id on line {line} of {path}")
    _check_captions(raw, path, "sentence")
    return pd.DataFrame({"video_id": raw["video_id"], "caption": raw["sentence"]})


def _json_captions(json_path: Path, csv_path: Path, expand_sentences: bool = True) -> pd.DataFrame:
    """(video_id, caption) rows: the ``sentences`` of an MSR-VTT-style json (MSRVTT_data.json,
    VATEX_data.json) whose video is listed in a split csv, in json order; with
    ``expand_sentences=False`` one row per video with its first caption."""
    ids = _read_csv(csv_path, ["video_id"])["video_id"].str.strip()
    ids = ids[ids != ""]
    data = _load_json(json_path)
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


def _frame(rows: list[tuple[str, str | None, int | None, int | None]]) -> pd.DataFrame:
    """Rows (video_id, caption, start, end) as a DataFrame with nullable integer times."""
    df = pd.DataFrame(rows, columns=["video_id", "caption", "start", "end"], dtype=object)
    df["start"] = pd.array(df["start"].tolist(), dtype="Int64")
    df["end"] = pd.array(df["end"].tolist(), dtype="Int64")
    return df


# ----------------------------------------------------------------------------------------------
# Video files
# ----------------------------------------------------------------------------------------------


class VideoIndex:
    """A listing of the video folders of one data set, built once, to resolve video paths.

    With ``videos_dir`` only that folder is listed (recursively). Otherwise every existing folder
    of :data:`VIDEO_FOLDERS` under ``root`` is listed recursively, then the files with a video
    extension directly in ``root``; where a name occurs more than once the first listed wins.
    """

    def __init__(self, root: str | os.PathLike, videos_dir: str | os.PathLike | None = None,
                 folders: Iterable[str] = VIDEO_FOLDERS) -> None:
        root = Path(root)
        self._files: dict[str, str] = {}
        if videos_dir is not None:
            videos_dir = Path(videos_dir)
            if not videos_dir.is_dir():
                raise DataError(f"videos folder not found: {videos_dir}")
            self.folders: list[Path] = [videos_dir]
            self._walk(videos_dir)
        else:
            seen: set[Path] = set()
            self.folders = []
            for name in folders:
                folder = root / name
                if folder.is_dir() and folder.resolve() not in seen:
                    seen.add(folder.resolve())
                    self.folders.append(folder)
                    self._walk(folder)
            if root.is_dir():
                with os.scandir(root) as entries:
                    for entry in sorted(entries, key=lambda e: e.name):
                        if not entry.is_dir() and os.path.splitext(entry.name)[1].lower() in VIDEO_EXTENSIONS:
                            self._add(entry.name, entry.path)
            self.folders.append(root)
        self.default_folder: Path = self.folders[0]

    def _add(self, name: str, path: str) -> None:
        stem, ext = os.path.splitext(name)
        self._files.setdefault(name, path)
        self._files.setdefault(stem + ext.lower(), path)

    def _walk(self, folder: Path) -> None:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                self._add(name, os.path.join(dirpath, name))

    def __len__(self) -> int:
        return len(set(self._files.values()))

    def find(self, stems: Iterable[str]) -> str:
        """Path of the first existing ``<stem><ext>`` (then ``<stem>`` itself) over ``stems``;
        ``<default folder>/<first stem>.mp4`` when there is none."""
        stems = list(stems)
        for stem in stems:
            for ext in VIDEO_EXTENSIONS:
                path = self._files.get(stem + ext)
                if path is not None:
                    return path
            path = self._files.get(stem)
            if path is not None:
                return path
        return str(self.default_folder / f"{stems[0]}{VIDEO_EXTENSIONS[0]}")


# ----------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------


class AnnotationReader(ABC):
    """One data set layout. Subclasses set the class attributes and implement :meth:`_rows`."""

    name: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ()
    split_aliases: ClassVar[Mapping[str, str]] = {}
    defaults: ClassVar[Mapping[str, Any]] = {}
    layout: ClassVar[str] = ""

    def available_splits(self, root: str | os.PathLike) -> tuple[str, ...]:
        """The splits this layout has (for ``teachclip``: those found under ``root``)."""
        return self.splits

    def canonical_split(self, split: str, root: str | os.PathLike) -> str:
        """``split`` with aliases resolved; DataError for a split the layout does not have."""
        split = self.split_aliases.get(split, split)
        known = self.available_splits(root)
        if split not in known:
            raise DataError(f"unknown {self.name} split {split!r} under {root} (expected one of {list(known)})")
        return split

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults updated with ``given``; DataError for an option the reader does not know."""
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise DataError(f"unknown option {unknown[0]!r} for {self.name} (known: {sorted(self.defaults)})")
        return {**self.defaults, **given}

    def counts_key(self, split: str, options: Mapping[str, Any]) -> str:
        """Key of :data:`PAPER_COUNTS` for ``split`` read with ``options``."""
        return split

    def expected_counts(self, split: str, options: Mapping[str, Any] | None = None) -> SplitCounts | None:
        """Published sizes of ``split``, or None where none are recorded."""
        opts = self.options(options or {})
        return PAPER_COUNTS.get(self.name, {}).get(self.counts_key(split, opts))

    def video_stems(self, video_id: str) -> tuple[str, ...]:
        """File names (without extension) under which the video of ``video_id`` may be stored."""
        return (video_id,)

    def read(self, root: str | os.PathLike, split: str, videos_dir: str | os.PathLike | None = None,
             **options: Any) -> pd.DataFrame:
        """Read one split; see the module docstring for the columns."""
        root = Path(root)
        opts = self.options(options)
        split = self.canonical_split(split, root)
        df = self._rows(root, split, opts).reset_index(drop=True)
        index = VideoIndex(root, videos_dir)
        df["split"] = split
        df["clip_id"] = [
            vid if pd.isna(s) else f"{vid}@{s}-{e}" for vid, s, e in zip(df["video_id"], df["start"], df["end"])
        ]
        paths = {vid: index.find(self.video_stems(vid)) for vid in dict.fromkeys(df["video_id"])}
        df["video_path"] = df["video_id"].map(paths)
        log.info(
            "%s %s: %d captions of %d videos (%d files indexed in %s)",
            self.name, split, int(df["caption"].notna().sum()), df["video_id"].nunique(), len(index),
            ", ".join(str(f) for f in index.folders),
        )
        return df[COLUMNS]

    @abstractmethod
    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        """The rows of one split: columns video_id, caption, start, end (see :func:`_frame`)."""


class MsrvttReader(AnnotationReader):
    """MSR-VTT in the CLIP4Clip / TeachCLIP layout.

    ``MSRVTT_data.json`` holds ``{"videos": [...], "sentences": [{"caption", "video_id", "sen_id"}]}``;
    ``MSRVTT_train.9k.csv`` (7k: ``MSRVTT_train.7k.csv``) lists the training videos (column
    ``video_id``) and ``MSRVTT_JSFUSION_test.csv`` the 1k-A test pairs (columns key, vid_key,
    video_id, sentence). Training rows are the sentences of the json whose video is in the training
    csv, in json order (one row per caption as CLIP4Clip's training loader unfolds them, or the
    first caption per video with ``expand_sentences=False``); test rows are the rows of the test csv.
    """

    name = "msrvtt"
    splits = ("train", "test")
    defaults = {
        "train_csv": "MSRVTT_train.9k.csv",
        "test_csv": "MSRVTT_JSFUSION_test.csv",
        "expand_sentences": True,
    }
    layout = ("MSRVTT_data.json, MSRVTT_train.9k.csv (or MSRVTT_train.7k.csv), MSRVTT_JSFUSION_test.csv "
              "[in Annotations/]; videos in VideoData/ (or videos/, MSRVTT_Videos/)")

    def counts_key(self, split: str, options: Mapping[str, Any]) -> str:
        csv_name = Path(str(options[f"{split}_csv"])).name
        variants = {"train": {"7k": "train-7k"}, "test": {"full": "test-full"}}[split]
        return next((key for tag, key in variants.items() if tag in csv_name), split)

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        csv_path = _locate(root, options[f"{split}_csv"])
        if split == "train":
            table = _json_captions(_locate(root, "MSRVTT_data.json"), csv_path, bool(options["expand_sentences"]))
        else:
            table = _csv_captions(csv_path)
        return _frame([(v, c, None, None) for v, c in zip(table["video_id"], table["caption"])])


class VatexReader(AnnotationReader):
    """VATEX in TeachCLIP's MSR-VTT-like layout (its configs read VATEX with the MSR-VTT loader).

    Training rows are the sentences of ``VATEX_data.json`` whose video is in ``VATEX_train.csv``,
    in json order (one row per caption, or the first caption per video with
    ``expand_sentences=False``); val and test rows are the rows of their csv files (columns
    ``video_id``, ``sentence``).
    """

    name = "vatex"
    splits = ("train", "val", "test")
    defaults = {
        "data_json": "VATEX_data.json",
        "train_csv": "VATEX_train.csv",
        "val_csv": "VATEX_val.csv",
        "test_csv": "VATEX_test.csv",
        "expand_sentences": True,
    }
    layout = "VATEX_data.json, VATEX_train.csv, VATEX_val.csv, VATEX_test.csv [in Annotations/]; videos in VideoData/"

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        csv_path = _locate(root, options[f"{split}_csv"])
        if split == "train":
            json_path = _locate(root, options["data_json"])
            table = _json_captions(json_path, csv_path, bool(options["expand_sentences"]))
        else:
            table = _csv_captions(csv_path)
        return _frame([(v, c, None, None) for v, c in zip(table["video_id"], table["caption"])])


class MsvdReader(AnnotationReader):
    """MSVD in the CLIP4Clip layout: split lists plus ``raw-captions.pkl``.

    ``raw-captions.pkl`` maps each video id to its captions, each a list of tokens; a caption is
    its tokens joined with single spaces. Every caption of every listed video is a row.
    """

    name = "msvd"
    splits = ("train", "val", "test")
    defaults = {"captions_pkl": "raw-captions.pkl"}
    layout = ("train_list.txt, val_list.txt, test_list.txt, raw-captions.pkl [in Annotations/]; "
              "videos in VideoData/ (or YouTubeClips/, MSVD_Videos/)")

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        list_path = _locate(root, f"{split}_list.txt")
        pkl_path = _locate(root, options["captions_pkl"])
        ids = _read_id_list(list_path)
        captions = _load_pickle(pkl_path)
        if not isinstance(captions, dict):
            raise DataError(f"{pkl_path} must hold a dict video_id -> captions, found {type(captions).__name__}")
        rows = []
        for vid in ids:
            if vid not in captions:
                raise DataError(f"video {vid} listed in {list_path} has no captions in {pkl_path}")
            entry = captions[vid]
            if not isinstance(entry, (list, tuple)) or not entry:
                raise DataError(f"{pkl_path}: captions of {vid} must be a non-empty list of token lists")
            for k, tokens in enumerate(entry):
                where = f"{pkl_path}, video {vid}, caption {k}"
                if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
                    raise DataError(f"{where}: expected a list of tokens, found {type(tokens).__name__}")
                rows.append((vid, _nonempty_text(" ".join(tokens), where), None, None))
        return _frame(rows)


class DiDeMoReader(AnnotationReader):
    """DiDeMo as video-paragraph retrieval, as CLIP4Clip and TeachCLIP read it.

    ``<split>_data.json`` is a list of ``{"video", "description", "times", ...}``; the
    descriptions of a video, in json order, are joined with single spaces into one paragraph.
    The segment is 0-31 s for every video: the reference computes the moment times from
    ``times`` and then replaces them by this fixed span, which covers the 30 s to which the
    annotation tool truncated the videos.
    """

    name = "didemo"
    splits = ("train", "val", "test")
    defaults: ClassVar[Mapping[str, Any]] = {}
    layout = ("{train,val,test}_list.txt, {train,val,test}_data.json [in Annotations/]; "
              "videos in VideoData/ (or DiDeMo_Videos/)")
    SEGMENT: ClassVar[tuple[int, int]] = (0, 31)

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        list_path = _locate(root, f"{split}_list.txt")
        json_path = _locate(root, f"{split}_data.json")
        ids = _read_id_list(list_path)
        data = _load_json(json_path)
        if not isinstance(data, list):
            raise DataError(f"{json_path} must hold a JSON list, found {type(data).__name__}")
        wanted = set(ids)
        texts: dict[str, list[str]] = {}
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "video" not in item or "description" not in item:
                raise DataError(f"entry {i} of {json_path} needs the keys 'video' and 'description'")
            vid = item["video"]
            if not isinstance(vid, str):
                raise DataError(f"entry {i} of {json_path}: 'video' must be a string")
            description = item["description"]
            if not isinstance(description, str):
                raise DataError(f"entry {i} of {json_path} ({vid}): 'description' must be a string")
            if vid in wanted:
                texts.setdefault(vid, []).append(description)
        _warn_uncaptioned(ids, texts, list_path, json_path)
        start, end = self.SEGMENT
        rows = []
        for vid, parts in texts.items():
            paragraph = _nonempty_text(" ".join(parts), f"{json_path}, video {vid}")
            rows.append((vid, paragraph, start, end))
        return _frame(rows)


def _warn_uncaptioned(ids: list[str], captioned: Mapping[str, Any], list_path: Path, ann_path: Path) -> None:
    missing = [v for v in dict.fromkeys(ids) if v not in captioned]
    if missing:
        log.warning(
            "%d videos listed in %s have no captions in %s and are skipped (as the reference does), e.g. %s",
            len(missing), list_path, ann_path, missing[0],
        )


class ActivityNetReader(AnnotationReader):
    """ActivityNet Captions as video-paragraph retrieval, as CLIP4Clip and TeachCLIP read it.

    ``<ids json>`` lists the annotation keys (``v_<youtube id>``) of the split; ``<captions json>``
    maps each key to ``{"duration", "timestamps", "sentences"}``. The sentences are joined with
    single spaces; the segment is 0 to ``ceil(duration)`` s (timestamps are not used). Test is
    ``val_1``, as in the reference.
    """

    name = "activitynet"
    splits = ("train", "test")
    split_aliases = {"val": "test", "val_1": "test"}
    defaults: ClassVar[Mapping[str, Any]] = {}
    layout = ("train_ids.json, train.json, val_ids.json, val_1.json [in Annotations/]; "
              "videos v_<id>.mp4 (or <id>.mp4) in VideoData/ (or Activity_Videos/)")
    FILES: ClassVar[Mapping[str, tuple[str, str]]] = {
        "train": ("train_ids.json", "train.json"),
        "test": ("val_ids.json", "val_1.json"),
    }

    def video_stems(self, video_id: str) -> tuple[str, ...]:
        # TeachCLIP names the files by the annotation key, CLIP4Clip by the key without "v_".
        return (video_id, video_id[2:]) if len(video_id) > 2 else (video_id,)

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        ids_name, captions_name = self.FILES[split]
        ids_path = _locate(root, ids_name)
        captions_path = _locate(root, captions_name)
        ids = _load_json(ids_path)
        if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
            raise DataError(f"{ids_path} must hold a JSON list of video ids")
        data = _load_json(captions_path)
        if not isinstance(data, dict):
            raise DataError(f"{captions_path} must hold a JSON object video_id -> annotation")
        ids = list(dict.fromkeys(ids))
        _warn_uncaptioned(ids, data, ids_path, captions_path)
        rows = []
        for vid in ids:
            if vid not in data:
                continue
            entry = data[vid]
            where = f"{captions_path}, video {vid}"
            if not isinstance(entry, dict) or "duration" not in entry or "sentences" not in entry:
                raise DataError(f"{where}: needs the keys 'duration' and 'sentences'")
            sentences = entry["sentences"]
            if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
                raise DataError(f"{where}: 'sentences' must be a list of strings")
            try:
                duration = float(entry["duration"])
            except (TypeError, ValueError) as exc:
                raise DataError(f"{where}: 'duration' {entry['duration']!r} is not a number") from exc
            if not math.isfinite(duration) or duration < 0:
                raise DataError(f"{where}: 'duration' {duration} is not a non-negative number")
            rows.append((vid, _nonempty_text(" ".join(sentences), where), 0, int(math.ceil(duration))))
        return _frame(rows)


class TeachclipReader(AnnotationReader):
    """TeachCLIP's own evaluation layout under a collection folder (e.g. ``datasets/msrvtt``).

    * ``VideoSet/<set>.txt``: the gallery, one video id per line (this names the split);
    * ``QuerySet/<set>-query.txt``: ``<query id>\\t<query>`` per line;
    * ``Annotations/<gt>.txt``: ``<query id>\\t<video id>`` per line, the ground truth, named
      ``<set>-gt.txt`` or ``<set without its last -part>-gt.txt`` (``msrvtt1k-test`` ->
      ``msrvtt1k-gt``) unless the ``gt_file`` option names it.

    A row per ground-truth line, then one row with caption ``None`` per gallery video that no
    query points to. A set without query file (a training list) gives caption-less rows only.
    The reference gives the 0-31 s segment to sets whose path contains ``didemo``
    (``didemo_segment`` overrides that: True or False).
    """

    name = "teachclip"
    defaults = {"gt_file": None, "didemo_segment": None}
    layout = ("VideoSet/<set>.txt, QuerySet/<set>-query.txt, Annotations/<set prefix>-gt.txt; "
              "videos in VideoData/")

    def available_splits(self, root: str | os.PathLike) -> tuple[str, ...]:
        folder = Path(root) / "VideoSet"
        return tuple(sorted(p.stem for p in folder.glob("*.txt"))) if folder.is_dir() else ()

    def canonical_split(self, split: str, root: str | os.PathLike) -> str:
        return split  # any set name; a missing VideoSet file is reported when it is read

    def _gt_path(self, root: Path, split: str, gt_file: str | None) -> Path:
        if gt_file is not None:
            return _locate(root, gt_file)
        names = [f"{split}-gt.txt"]
        if "-" in split:
            names.append(f"{split.rsplit('-', 1)[0]}-gt.txt")
        for name in names:
            path = root / ANNOTATIONS_FOLDER / name
            if path.is_file():
                return path
        raise DataError(
            f"ground-truth file not found: {' nor '.join(str(root / ANNOTATIONS_FOLDER / n) for n in names)}"
        )

    def _rows(self, root: Path, split: str, options: dict[str, Any]) -> pd.DataFrame:
        set_path = root / "VideoSet" / f"{split}.txt"
        if not set_path.is_file():
            raise DataError(f"video set file not found: {set_path}")
        gallery = _read_id_list(set_path)
        didemo = options["didemo_segment"]
        if didemo is None:
            didemo = "didemo" in str(set_path)
        start, end = DiDeMoReader.SEGMENT if didemo else (None, None)

        query_path = root / "QuerySet" / f"{split}-query.txt"
        pairs: list[tuple[str, str]] = []
        if query_path.is_file():
            queries: dict[str, str] = {}
            for n, line in _read_lines(query_path, strip=False):
                qid, sep, text = line.partition("\t")
                qid, text = qid.strip(), text.strip()
                if not sep or not qid:
                    raise DataError(f"line {n} of {query_path} is not '<query id>\\t<query>': {line[:80]!r}")
                if qid in queries:
                    raise DataError(f"duplicate query id {qid!r} on line {n} of {query_path}")
                queries[qid] = _nonempty_text(text, f"line {n} of {query_path}")
            gt_path = self._gt_path(root, split, options["gt_file"])
            in_gallery = set(gallery)
            used: set[str] = set()
            for n, line in _read_lines(gt_path):
                fields = line.split("\t")
                if len(fields) != 2 or not all(f.strip() for f in fields):
                    raise DataError(f"line {n} of {gt_path} is not '<query id>\\t<video id>': {line[:80]!r}")
                qid, vid = fields
                if qid not in queries:
                    raise DataError(f"query {qid!r} on line {n} of {gt_path} is not in {query_path}")
                if vid not in in_gallery:
                    raise DataError(f"video {vid!r} on line {n} of {gt_path} is not in {set_path}")
                pairs.append((vid, queries[qid]))
                used.add(qid)
            if len(used) < len(queries):
                log.warning("%d queries of %s have no ground truth in %s", len(queries) - len(used),
                            query_path, gt_path)
        else:
            log.info("no query file %s: %s is read as a gallery without captions", query_path, split)
        queried = {vid for vid, _ in pairs}
        rows = [(vid, text, start, end) for vid, text in pairs]
        rows += [(vid, None, start, end) for vid in dict.fromkeys(gallery) if vid not in queried]
        return _frame(rows)


READERS: dict[str, AnnotationReader] = {
    reader.name: reader
    for reader in (MsrvttReader(), MsvdReader(), DiDeMoReader(), ActivityNetReader(), VatexReader(),
                   TeachclipReader())
}


def get_reader(dataset: str) -> AnnotationReader:
    """The reader registered under ``dataset``; DataError naming the known ones otherwise."""
    try:
        return READERS[dataset]
    except KeyError:
        raise DataError(f"unknown data set {dataset!r} (known: {sorted(READERS)})") from None


def read_annotations(dataset: str, root: str | os.PathLike, split: str,
                     videos_dir: str | os.PathLike | None = None, **options: Any) -> pd.DataFrame:
    """Read one split of a data set: see the module docstring for the layouts and columns.

    Args:
        dataset: a key of :data:`READERS` (msrvtt, msvd, didemo, activitynet, vatex, teachclip).
        root: the data set folder (annotation files in it or in its ``Annotations/``).
        split: a split of the data set (``teachclip``: a ``VideoSet`` name).
        videos_dir: folder of the video files; found under ``root`` when None.
        **options: reader options, e.g. ``train_csv="MSRVTT_train.7k.csv"`` or
            ``expand_sentences=False`` for MSR-VTT.
    """
    return get_reader(dataset).read(root, split, videos_dir, **options)


def coerce_options(dataset: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """Reader options given as strings (``key=value`` on the command line) in their types:
    booleans for options whose default is a boolean or None (``true``/``false``, ``1``/``0``,
    ``yes``/``no``; ``none`` for None), strings otherwise."""
    reader = get_reader(dataset)
    reader.options(raw)  # unknown names
    out: dict[str, Any] = {}
    for key, value in raw.items():
        default = reader.defaults[key]
        low = value.strip().lower()
        if default is None and low == "none":
            out[key] = None
        elif isinstance(default, bool) or (default is None and low in _BOOLEANS):
            if low not in _BOOLEANS:
                raise DataError(f"option {key} of {dataset} takes true or false, got {value!r}")
            out[key] = _BOOLEANS[low]
        else:
            out[key] = value
    return out


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
