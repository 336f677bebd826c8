"""Data: annotation readers for every data set, data set checks, frame sampling and decoding,
frame cache, synthetic data set."""

from tclib.data.cache import FrameCache, build_frame_cache
from tclib.data.check import CheckReport, SplitCheck, check_dataset, probe_video
from tclib.data.dataset import PairDataset
from tclib.data.frames import (
    CLIP_MEAN,
    CLIP_STD,
    normalize_frames,
    pad_frames,
    read_video_frames,
    resize_center_crop,
    sample_frame_indices,
)
from tclib.data.msrvtt import check_videos, read_msrvtt, relevance_table, resolve_videos_dir
from tclib.data.readers import (
    PAPER_COUNTS,
    READERS,
    VIDEO_EXTENSIONS,
    VIDEO_FOLDERS,
    AnnotationReader,
    SplitCounts,
    VideoIndex,
    get_reader,
    read_annotations,
)
from tclib.data.synthetic import render_image_caption_pairs, write_synthetic_msrvtt

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "PAPER_COUNTS",
    "READERS",
    "VIDEO_EXTENSIONS",
    "VIDEO_FOLDERS",
    "AnnotationReader",
    "CheckReport",
    "FrameCache",
    "PairDataset",
    "SplitCheck",
    "SplitCounts",
    "VideoIndex",
    "build_frame_cache",
    "check_dataset",
    "check_videos",
    "get_reader",
    "normalize_frames",
    "pad_frames",
    "probe_video",
    "read_annotations",
    "read_msrvtt",
    "read_video_frames",
    "relevance_table",
    "render_image_caption_pairs",
    "resize_center_crop",
    "resolve_videos_dir",
    "sample_frame_indices",
    "write_synthetic_msrvtt",
]
