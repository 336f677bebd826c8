"""01 · The data stage: the synthetic set (demo), the annotations, the frame cache, the backbone (demo).

`prepare_data` returns a `Data`: what every later stage reads (the annotation tables, the frame
source, the CLIP weights to start from) and the `Identities` their inputs are made of:

    frames     the sampling and the video of every clip          results/<exp>/frames/<fingerprint>/
    train      the frames and the (video, caption) pairs that train (videos that failed left out)
    backbone   the CLIP weights every model starts from           results/<exp>/backbone/<fingerprint>/ (demo)

Identities do not depend on where the project or the data lie: a video is its path relative to the
data set's folder (`videos_dir`, else `data_root`) and its content signature, a checkpoint its content
signature (tclib.stages.file_identity, tclib.files.content_signature). So a project or a data set
moved, copied or mounted elsewhere reruns nothing, and a file replaced with other content reruns what
read it. Folders made before this rule are adopted by `tclib migrate` (tclib.migrate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pandas as pd

from ..data import (
    DecodedFrames,
    FrameCache,
    PairDataset,
    Sampling,
    build_frame_cache,
    read_annotations,
    write_synthetic_msrvtt,
)
from ..errors import ParamsError
from ..evaluate import TestSet
from ..files import content_signature
from ..models import Tokenizer
from ..params import Params
from ..pretrain import pretrain_clip
from ..stages import Stage, StageInputs, file_identity, fingerprint

log = logging.getLogger(__name__)

# What the models compute beyond the params (padded slots zero in normalized space, frame positions
# sized by the context length, the teacher cache's format): part of every model stage's inputs.
MODEL_FORMAT = 2


@dataclass(frozen=True)
class Identities:
    """What the later stages' inputs are made of: the fingerprints of the data and of the backbone."""

    frames: str  # the sampling and the video of every clip (and the synthetic set's params)
    train: str  # the frames, and the (video, caption) pairs actually used for training
    backbone: str  # the CLIP weights every model starts from


@dataclass
class Data:
    """What the later stages read: annotation tables, the frame source, the backbone to start from,
    and the identities of their inputs."""

    train: pd.DataFrame
    test: pd.DataFrame
    cache: FrameCache | DecodedFrames
    clip_pretrained: str  # the params' own value, or the pretrained demo backbone's file
    ids: Identities


def prepare_data(P: Params) -> Data:
    """Write the synthetic set (demo), read the annotations, build the frame cache, pretrain (demo)."""
    if P.synthetic:
        write_synthetic_msrvtt(Path(P.data_root), n_train=P.synthetic_train_videos, n_test=P.synthetic_test_videos,
                               size=P.synthetic_frame_size, seed=P.synthetic_seed, workers=P.decode_workers)
    train, test = read_splits(P)
    videos = video_specs(train, test)
    stage = frames_stage(P, videos)
    cache = frame_source(P, videos, stage)
    if cache.failed:
        log.warning("%d videos could not be decoded (see %s); their captions are left out",
                    len(cache.failed), stage.directory / "failures.csv")
    return data_of(P, train, test, cache, stage, pretrain_backbone(P))


def prepared_data(P: Params) -> Data | None:
    """The Data of an experiment whose data stage has run, read without building anything (what
    `tclib clean` asks); None while its frame cache is not complete."""
    train, test = read_splits(P)
    videos = video_specs(train, test)
    stage = frames_stage(P, videos)
    cache: FrameCache | DecodedFrames
    if P.frame_cache:
        if not (stage.directory / "manifest.json").is_file():
            return None
        cache = FrameCache(stage.directory)
        if not cache.complete:
            return None
    else:
        cache = DecodedFrames(videos, sampling_of(P), P.decode_workers)
    clip_pretrained = str(backbone_stage(P).directory / "clip.pt") if P.pretrain_steps > 0 else P.clip_pretrained
    return data_of(P, train, test, cache, stage, clip_pretrained)


def data_of(P: Params, train: pd.DataFrame, test: pd.DataFrame, cache: FrameCache | DecodedFrames, stage: Stage,
            clip_pretrained: str) -> Data:
    """The Data of the splits over a frame source: the captions of videos that failed to decode left out."""
    failed = set(cache.failed)
    train = train[~train.clip_id.isin(failed)].reset_index(drop=True)
    test = test[~test.clip_id.isin(failed)].reset_index(drop=True)
    ids = Identities(stage.fingerprint, train_fingerprint(stage.fingerprint, train), backbone_fingerprint(P))
    return Data(train, test, cache, clip_pretrained, ids)


def read_splits(P: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_annotations(P, P.train_split), split_annotations(P, P.test_split)


def split_annotations(P: Params, split: str) -> pd.DataFrame:
    """One split's rows with a caption (gallery-only videos of the TeachCLIP layout are left out)."""
    table = read_annotations(P.dataset, P.data_root, split, P.videos_dir or None, **P.data_options)
    unlabelled = table.caption.isna()
    if unlabelled.any():
        log.info("%s/%s: %d videos without a caption left out", P.dataset, split, int(unlabelled.sum()))
    return table[~unlabelled].reset_index(drop=True)


def video_specs(*tables: pd.DataFrame) -> dict:
    """clip id -> video file, or (file, start, end) for a segment, over the rows of `tables`."""
    videos = {}
    for row in pd.concat(tables).itertuples(index=False):
        videos[row.clip_id] = row.video_path if pd.isna(row.start) else (row.video_path, int(row.start), int(row.end))
    return videos


def sampling_of(P: Params) -> Sampling:
    """The frames every model of the experiment sees: the params' sampling at the CLIP's image size."""
    return Sampling(P.max_frames, image_size_of(P.clip_model), P.framerate, P.slice_framepos)


def image_size_of(model_name: str) -> int:
    config = open_clip.get_model_config(model_name)
    if config is None:
        raise ParamsError(f"unknown clip_model {model_name!r}")
    size = config["vision_cfg"]["image_size"]
    return int(size if isinstance(size, int) else size[0])


# ---------------------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class FramesInputs(StageInputs):
    """What the frame cache holds: the sampling, every clip's video (its identity, and its segment), for
    the synthetic set the parameters that make its files, and the storage."""

    sampling: dict
    videos: dict  # clip id -> {"path" (relative to the data set's folder), "size", "sha256"[, "segment"]}
    synthetic: list | None = None
    storage: str = "raw"
    jpeg_quality: int | None = None  # a JPEG cache's


def frames_inputs(P: Params, videos: dict) -> FramesInputs:
    root = P.videos_dir or P.data_root
    identities = {}
    for clip, spec in videos.items():
        path, segment = (spec, None) if isinstance(spec, str) else (spec[0], list(spec[1:]))
        identities[clip] = {**file_identity(path, root), **({"segment": segment} if segment else {})}
    synthetic = P.values(["synthetic_train_videos", "synthetic_test_videos", "synthetic_frame_size",
                          "synthetic_seed"]) if P.synthetic else None
    jpeg = P.frame_cache_format == "jpeg"
    return FramesInputs(sampling_of(P).as_dict(), identities, synthetic, P.frame_cache_format,
                        P.jpeg_quality if jpeg else None)


def frames_stage(P: Params, videos: dict) -> Stage:
    return Stage(P.exp_dir / "frames", frames_inputs(P, videos))


def frame_source(P: Params, videos: dict, stage: Stage) -> FrameCache | DecodedFrames:
    """The frame cache of these videos (built here unless done), or decoding on the fly."""
    if not P.frame_cache:
        return DecodedFrames(videos, sampling_of(P), P.decode_workers)
    if not stage.finished():
        stage.begin()
    cache = build_frame_cache(videos, stage.directory, sampling_of(P), P.decode_workers,
                              storage=P.frame_cache_format, jpeg_quality=P.jpeg_quality)
    if cache.complete and not stage.finished():
        stage.finish(videos=len(cache), failed=len(cache.failed))
    return cache


def train_fingerprint(frames_fp: str, train: pd.DataFrame) -> str:
    """The training data as the models see it: the frames and each (video, caption) pair, in order."""
    return fingerprint(frames_fp, list(zip(train.clip_id, train.caption, strict=True)))


# -------------------------------------------------------------------------------------- backbone


@dataclass(frozen=True)
class BackboneInputs(StageInputs):
    """What the demo's backbone pretraining reads."""

    format: int
    clip_model: str
    clip_pretrained: Any  # a pretrained tag as it is, a local file by its identity
    pretrain_steps: int
    pretrain_batch_size: int
    pretrain_lr: float
    max_words: int
    synthetic_frame_size: int
    synthetic_seed: int


def backbone_inputs(P: Params) -> BackboneInputs:
    return BackboneInputs(MODEL_FORMAT, P.clip_model, clip_source(P), P.pretrain_steps,
                          P.pretrain_batch_size, P.pretrain_lr, P.max_words, P.synthetic_frame_size, P.synthetic_seed)


def clip_source(P: Params) -> Any:
    """The identity of clip_pretrained: a pretrained tag as it is, a local file by its content signature."""
    pretrained = P.clip_pretrained
    if pretrained and (Path(pretrained).exists() or Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}):
        return content_signature(pretrained)
    return pretrained


def backbone_stage(P: Params) -> Stage:
    return Stage(P.exp_dir / "backbone", backbone_inputs(P))


def backbone_fingerprint(P: Params) -> str:
    """The CLIP weights every model starts from: the pretraining stage's, or the params' own."""
    if P.pretrain_steps > 0:
        return backbone_inputs(P).fingerprint
    return fingerprint(P.clip_model, clip_source(P))


def pretrain_backbone(P: Params) -> str:
    """The CLIP weights later stages start from: the demo's pretrained backbone (tclib.pretrain, run
    here unless done), or the params' own clip_pretrained when pretrain_steps is 0."""
    if P.pretrain_steps <= 0:
        return P.clip_pretrained
    stage = backbone_stage(P)
    if not stage.finished():
        stage.begin()
        stage.finish(**pretrain_clip(P, image_size_of(P.clip_model), stage.directory))
    return str(stage.directory / "clip.pt")


# ------------------------------------------------------------------------ what later stages read


def train_dataset(P: Params, data: Data) -> PairDataset:
    return PairDataset(list(data.train.caption), list(data.train.clip_id), data.cache, Tokenizer(P.max_words))


def test_set(P: Params, data: Data) -> TestSet:
    """The test split over the frame cache: frames stay on disk and are read a batch at a time."""
    video_ids = list(dict.fromkeys(data.test.clip_id))
    position = {v: i for i, v in enumerate(video_ids)}
    return TestSet(tokens=Tokenizer(P.max_words)(list(data.test.caption)),
                   caption_video=np.array([position[v] for v in data.test.clip_id], dtype=np.int64),
                   frames=data.cache.frames, mask=data.cache.mask, video_ids=video_ids,
                   rows=np.array([data.cache.index_of(v) for v in video_ids], dtype=np.int64))


def first_caption_per_video(data: Data) -> list[int]:
    """The position in data.test of each test video's first caption, in the order of the videos."""
    first: dict[str, int] = {}
    for i, video_id in enumerate(data.test.clip_id):
        first.setdefault(video_id, i)
    return list(first.values())
