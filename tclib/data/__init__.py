"""Data: one reader per annotation layout, frame sampling and decoding, the frame cache (layout and
reader, builder), decoding on the fly, the decode-pool helper, the synthetic data set, data set checks.

    readers       read_annotations: a table per split for every layout (READERS)
    frames        Sampling, the reference's frame sampling, decoding with decord (PyAV fallback)
    framecache    the frame cache's layout and reader (FrameCache) and the FrameSource interface
    cachebuilder  build_frame_cache: every video decoded once into the cache, resumable
    onthefly      DecodedFrames: the same frames, decoded when read
    pool          parallel_map: the worker processes of every decoding loop
    dataset       PairDataset: (caption, video) pairs over a frame source
    scenes        what a synthetic video shows: concepts, captions, plans, frames
    synthetic     the synthetic MSR-VTT-layout data set with its ground truth
    check         `tclib data check`
"""

from tclib.data.cachebuilder import build_frame_cache
from tclib.data.check import CheckReport, SplitCheck, check_dataset, probe_video
from tclib.data.dataset import PairDataset
from tclib.data.framecache import FrameCache
from tclib.data.frames import (
    CLIP_MEAN,
    CLIP_STD,
    Sampling,
    moment_frame_indices,
    normalize_frames,
    pad_frames,
    read_moment_frames,
    read_padded_frames,
    read_video_frames,
    resize_center_crop,
    sample_frame_indices,
)
from tclib.data.onthefly import DecodedFrames
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
from tclib.data.scenes import render_image_caption_pairs
from tclib.data.synthetic import relevance_table, write_synthetic_msrvtt

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "PAPER_COUNTS",
    "READERS",
    "VIDEO_EXTENSIONS",
    "VIDEO_FOLDERS",
    "AnnotationReader",
    "CheckReport",
    "DecodedFrames",
    "FrameCache",
    "PairDataset",
    "Sampling",
    "SplitCheck",
    "SplitCounts",
    "VideoIndex",
    "build_frame_cache",
    "check_dataset",
    "get_reader",
    "moment_frame_indices",
    "normalize_frames",
    "pad_frames",
    "probe_video",
    "read_annotations",
    "read_moment_frames",
    "read_padded_frames",
    "read_video_frames",
    "relevance_table",
    "render_image_caption_pairs",
    "resize_center_crop",
    "sample_frame_indices",
    "write_synthetic_msrvtt",
]
