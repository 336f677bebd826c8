"""Frame sampling and decoding, following the CLIP4Clip reference extractor.

The reference (CLIP4Clip's OpenCV-based raw video extractor plus its data loader) samples
``framerate`` frames per second of video, walks the seconds ``start .. end`` *inclusive*, stops at
the first frame index past the end of the video and finally keeps ``max_frames`` of the sampled
frames (head, tail or evenly spaced). :func:`sample_frame_indices` reproduces that arithmetic
exactly, including its quirks:

* the frame rate is truncated to an integer before anything else (29.97 fps behaves as 29 fps);
* ``total_duration`` is the ceiling of ``frame_count / fps`` and the loop runs to it inclusively,
  so the last second is usually cut short by the end-of-video stop;
* the even spacing uses ``np.linspace(..., dtype=int)``, i.e. truncation, not rounding.

That is how a data set's clips are read (the paper's numbers depend on it). A *moment* of a user's
video is different: ``[start, end)`` in seconds as a player shows them, fractional where the source
gives fractions. :func:`moment_frame_indices` takes its frames at the same rate (``framerate`` a
second, at most ``max_frames``, kept the same way) at the real times, with the video's real frame rate.

Decoding uses decord; each frame is resized so that its short side equals ``image_size``
(bicubic, as CLIP's preprocessing) and center-cropped to a square, with the same arithmetic as
torchvision's ``Resize(int)`` and ``CenterCrop``. decord's batch read fails on some frame widths
(48 or 24 pixels, for instance: dmlc/decord issue 336); such videos are decoded with PyAV instead,
walking the frames in presentation order, so the sampled indices mean the same frames.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard, cast

import numpy as np
from PIL import Image

from tclib.errors import DataError

if TYPE_CHECKING:  # torch is only needed by normalize_frames
    import torch

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "SLICE_FRAMEPOS",
    "Sampling",
    "normalize_frames",
    "pad_frames",
    "moment_frame_indices",
    "read_moment_frames",
    "read_padded_frames",
    "read_video_frames",
    "resize_center_crop",
    "sample_frame_indices",
    "sampled_frame_count",
    "sampled_frame_seconds",
    "sampling_problems",
    "video_metadata",
]

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


SLICE_FRAMEPOS = {0: "head", 1: "tail", 2: "uniform"}  # how max_frames are kept of more sampled frames


def sampling_problems(**values: object) -> dict[str, str]:
    """{field: what is wrong} for the Sampling fields given (checked only those): max_frames and
    image_size are integers ≥ 1, framerate an integer (≤ 0: every frame), slice_framepos 0, 1 or 2."""
    problems = {}
    for key in ("max_frames", "image_size"):
        value = values.get(key)
        if key in values and not (_is_int(value) and value >= 1):
            problems[key] = "must be an integer ≥ 1"
    if "framerate" in values and not _is_int(values["framerate"]):
        problems["framerate"] = "must be an integer"
    position = values.get("slice_framepos", 0)
    if not (_is_int(position) and position in SLICE_FRAMEPOS):
        problems["slice_framepos"] = "must be 0 (head), 1 (tail) or 2 (uniform)"
    return problems


def _is_int(value: object) -> TypeGuard[int | np.integer]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video the models see, and at what size: at most `max_frames` of the frames
    taken `framerate` times a second (≤ 0: every frame), kept by `slice_framepos` (0 the first, 1 the
    last, 2 evenly spaced) and cropped to `image_size` square. The params, the frame cache, decoding
    on the fly and the teacher feature cache all describe their frames with it."""

    max_frames: int
    image_size: int
    framerate: int = 1
    slice_framepos: int = 2

    def __post_init__(self) -> None:
        problems = sampling_problems(**self.as_dict())
        if problems:
            raise DataError("frame sampling: " + "; ".join(f"{k} {why}, got {getattr(self, k)!r}"
                                                           for k, why in problems.items()))

    def as_dict(self) -> dict[str, int]:
        return {"max_frames": self.max_frames, "image_size": self.image_size, "framerate": self.framerate,
                "slice_framepos": self.slice_framepos}


def sample_frame_indices(
    frame_count: int,
    fps: float,
    sampling: Sampling,
    start_time: int | None = None,
    end_time: int | None = None,
    video: str = "<video>",
) -> np.ndarray:
    """Frame indices that the CLIP4Clip reference decodes for one video.

    Args:
        frame_count: number of frames in the video.
        fps: the video's frame rate; truncated to ``int`` as the reference does.
        sampling: max_frames, framerate and slice_framepos (its image_size plays no part here).
        start_time, end_time: optional segment in whole seconds (both or neither).
        video: name used in error messages.

    Returns:
        int64 array of frame indices, ascending, length ``<= max_frames``.
    """
    max_frames, framerate, slice_framepos = sampling.max_frames, sampling.framerate, sampling.slice_framepos
    fps_int = int(fps)
    frame_count = int(frame_count)
    if fps_int <= 0:
        raise DataError(f"{video}: frame rate {fps!r} truncates to {fps_int}; cannot sample frames")
    if frame_count <= 0:
        raise DataError(f"{video}: video has no frames (frame count {frame_count})")

    start_sec, end_sec = _seconds(frame_count, fps_int, start_time, end_time, video)
    offsets = _offsets(fps_int, framerate)
    indices: list[int] = []
    for sec in range(start_sec, end_sec + 1):
        second = [sec * fps_int + offset for offset in offsets]
        inside = [idx for idx in second if idx < frame_count]
        indices += inside
        if len(inside) < len(second):  # the reference's read fails past the end and leaves both loops
            break
    return _keep(np.asarray(indices, dtype=np.int64), max_frames, slice_framepos)


TIME_EPSILON = 1e-6  # seconds: times within it of a frame's start are that frame's (rounding of stored times)


def moment_frame_indices(frame_count: int, fps: float, sampling: Sampling, start: float, end: float,
                         video: str = "<video>") -> np.ndarray:
    """Frame indices of the moment ``[start, end)`` seconds of a video, as a player shows it.

    A frame every ``1 / framerate`` s from ``start`` (every frame when framerate ≤ 0); a moment shorter
    than one step gets the frame at its middle. Frame ``i`` is on screen from ``i / fps`` (the real,
    fractional frame rate), so the frame shown at time ``t`` is ``floor(t * fps)``. Frames past the
    video's end are dropped; at most ``max_frames`` are kept by ``slice_framepos``, as for a clip.
    Raises DataError naming ``video`` for a bad rate, an empty video or ``not 0 <= start < end``.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise DataError(f"{video}: frame rate {fps!r}; cannot locate frames in time")
    if int(frame_count) <= 0:
        raise DataError(f"{video}: video has no frames (frame count {frame_count})")
    if not (0 <= start < end):
        raise DataError(f"{video}: a moment needs 0 <= start < end seconds, got {start!r}, {end!r}")
    first = math.floor(start * fps + TIME_EPSILON)
    if sampling.framerate <= 0:
        indices = np.arange(first, math.ceil(end * fps - TIME_EPSILON), dtype=np.int64)
    else:
        step = 1.0 / sampling.framerate
        if end - start < step:
            times = np.array([(start + end) / 2])
        else:
            times = start + step * np.arange(math.ceil((end - start) * sampling.framerate - TIME_EPSILON))
        indices = np.unique(np.floor(times * fps + TIME_EPSILON).astype(np.int64))
    indices = indices[indices < int(frame_count)]
    return _keep(indices, sampling.max_frames, sampling.slice_framepos)


def _seconds(frame_count: int, fps_int: int, start_time: int | None, end_time: int | None, video: str
             ) -> tuple[int, int]:
    """The first and last second the reference walks (inclusive): 0 .. ceil(frames / fps), or the segment
    cut to that."""
    total_duration = (frame_count + fps_int - 1) // fps_int
    if start_time is None and end_time is None:
        return 0, total_duration
    if not (_is_int(start_time) and _is_int(end_time) and 0 <= start_time < end_time):
        raise DataError(f"{video}: segment start/end must be integers with 0 <= start < end, "
                        f"got start_time={start_time!r}, end_time={end_time!r}")
    return int(start_time), min(int(end_time), total_duration)


def _offsets(fps_int: int, framerate: int) -> list[int]:
    """The frames taken within each second: `framerate` of them, fps // framerate apart (every frame when
    framerate ≤ 0 or above the frame rate)."""
    if framerate <= 0:
        framerate = fps_int
    interval = max(1, fps_int // framerate)
    return list(range(0, fps_int, interval))[:framerate]


def _keep(indices: np.ndarray, max_frames: int, slice_framepos: int) -> np.ndarray:
    """At most max_frames of the sampled frames: the first, the last or evenly spaced (linspace, truncated)."""
    if len(indices) <= max_frames:
        return indices
    if slice_framepos == 0:
        return indices[:max_frames]
    if slice_framepos == 1:
        return indices[-max_frames:]
    return indices[np.linspace(0, len(indices) - 1, num=max_frames, dtype=int)]


def resize_center_crop(frame: np.ndarray, image_size: int) -> np.ndarray:
    """Resize an RGB frame (H, W, 3) so its short side is ``image_size``, center-crop a square.

    Bicubic PIL resize, with torchvision's ``Resize(int)`` size rule (long side truncated) and
    ``CenterCrop`` offsets. Returns uint8 (3, image_size, image_size).
    """
    h, w = frame.shape[:2]
    if h <= w:
        new_h, new_w = image_size, int(image_size * w / h)
    else:
        new_h, new_w = int(image_size * h / w), image_size
    img = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).convert("RGB")
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    arr = np.asarray(img)
    top = int(round((new_h - image_size) / 2.0))
    left = int(round((new_w - image_size) / 2.0))
    arr = arr[top : top + image_size, left : left + image_size]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _to_numpy(batch) -> np.ndarray:
    """decord returns its own NDArray (native bridge) or a framework tensor (other bridges)."""
    if hasattr(batch, "asnumpy"):
        return batch.asnumpy()
    if hasattr(batch, "numpy"):
        return batch.numpy()
    return np.asarray(batch)


def _open_video(path: str):
    """Open ``path`` with decord; returns (reader, frame count, average fps)."""
    import decord  # imported here so that importing tclib.data does not need decord

    if not os.path.isfile(path):
        raise DataError(f"video file not found: {path}")
    try:
        vr = decord.VideoReader(path, num_threads=1)
        frame_count = len(vr)
        fps = vr.get_avg_fps()
    except Exception as exc:  # decord raises its own DECORDError / RuntimeError types
        raise DataError(f"cannot open video {path}: {_short(exc)}") from exc
    return vr, frame_count, fps


def video_metadata(path: str | os.PathLike) -> tuple[int, float]:
    """(frame count, average frame rate) of a video, from its container (no frame decoded); DataError
    naming the file when it is missing or cannot be opened."""
    vr, frame_count, fps = _open_video(str(path))
    del vr
    return frame_count, fps


def _indices_to_read(path: str, frame_count: int, fps: float, sampling: Sampling, start_time: int | None,
                     end_time: int | None) -> np.ndarray:
    """:func:`sample_frame_indices` for one opened video; DataError when none falls in the segment."""
    indices = sample_frame_indices(frame_count, fps, sampling, start_time, end_time, video=path)
    if len(indices) == 0:
        raise DataError(
            f"{path}: no frame in segment start_time={start_time}, end_time={end_time} "
            f"({frame_count} frames at {fps:.3f} fps)"
        )
    return indices


def sampled_frame_count(path: str | os.PathLike, sampling: Sampling, start_time: int | None = None,
                        end_time: int | None = None) -> int:
    """Number of frames :func:`read_video_frames` returns for this video, from its metadata only.

    Opens the container (frame count and rate) without decoding a frame. Raises the same
    :class:`DataError` as :func:`read_video_frames` for a missing or unreadable file or an empty
    segment; a file whose frames fail to decode is only caught by :func:`read_video_frames`.
    """
    return len(sampled_frame_seconds(path, sampling, start_time, end_time))


def sampled_frame_seconds(path: str | os.PathLike, sampling: Sampling, start_time: int | None = None,
                          end_time: int | None = None) -> np.ndarray:
    """When, in seconds from the start of the file, each frame that :func:`read_video_frames` returns
    was shown (frame index / frame rate); from the metadata only, like :func:`sampled_frame_count`."""
    path = str(path)
    vr, frame_count, fps = _open_video(path)
    del vr
    return _indices_to_read(path, frame_count, fps, sampling, start_time, end_time) / fps


def read_video_frames(path: str | os.PathLike, sampling: Sampling, start_time: int | None = None,
                      end_time: int | None = None) -> np.ndarray:
    """Decode the frames the reference samples from one video (or its segment, in whole seconds).

    Returns uint8 (n, 3, image_size, image_size) with ``1 <= n <= max_frames``.
    Raises :class:`DataError` naming ``path`` when the file is missing, cannot be decoded, or
    yields no frame in the requested segment.
    """
    path = str(path)
    return _decode(path, sampling, lambda frames, fps: _indices_to_read(path, frames, fps, sampling, start_time,
                                                                         end_time))


def read_moment_frames(path: str | os.PathLike, sampling: Sampling, start: float, end: float) -> np.ndarray:
    """Decode the frames of the moment ``[start, end)`` seconds of a video, as a player shows it
    (:func:`moment_frame_indices`). Returns uint8 (n, 3, image_size, image_size), ``1 <= n <=
    max_frames``; DataError naming ``path`` when it cannot be read or the moment lies past its end."""
    path = str(path)

    def indices_of(frame_count: int, fps: float) -> np.ndarray:
        indices = moment_frame_indices(frame_count, fps, sampling, start, end, video=path)
        if len(indices) == 0:
            raise DataError(f"{path}: the moment {start:g}-{end:g} s starts after the video ends "
                            f"({frame_count} frames at {fps:.3f} fps: {frame_count / fps:.3f} s)")
        return indices

    return _decode(path, sampling, indices_of)


def _decode(path: str, sampling: Sampling, indices_of: Callable[[int, float], np.ndarray]) -> np.ndarray:
    """The frames of a video that `indices_of(frame count, fps)` picks, resized and cropped (decord; PyAV
    where decord fails)."""
    vr, frame_count, fps = _open_video(path)
    batch: np.ndarray | None = None
    reason = ""  # why decord failed
    try:
        indices = indices_of(frame_count, fps)
        batch = _to_numpy(vr.get_batch(indices.tolist()))
    except DataError:
        raise
    except Exception as exc:  # decord raises its own error types
        reason = _short(exc)
    finally:
        del vr
    if batch is None or batch.ndim != 4 or batch.shape[0] != len(indices) or batch.shape[-1] != 3:
        # decord fails on some frame widths (its RGB buffers keep the decoder's row padding);
        # decode those videos with PyAV instead, which walks the frames in the same order
        if batch is not None:
            reason = f"frames of shape {batch.shape}"
        log.debug("decord could not decode %s (%s); decoding with PyAV", path, reason)
        batch = _decode_with_pyav(path, indices, reason)
    out = np.empty((len(indices), 3, sampling.image_size, sampling.image_size), dtype=np.uint8)
    for i, frame in enumerate(batch):
        out[i] = resize_center_crop(frame, sampling.image_size)
    return out


def read_padded_frames(path: str | os.PathLike, sampling: Sampling, start_time: int | None = None,
                       end_time: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_video_frames` padded to max_frames (:func:`pad_frames`): what a frame source holds."""
    return pad_frames(read_video_frames(path, sampling, start_time, end_time), sampling.max_frames)


def _decode_with_pyav(path: str, indices: np.ndarray, decord_reason: str) -> np.ndarray:
    """RGB frames (n, H, W, 3) at ``indices`` (presentation order), decoded with PyAV."""
    import av

    wanted = {int(i): k for k, i in enumerate(indices)}
    last = int(indices.max())
    frames: list[np.ndarray | None] = [None] * len(indices)
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    frames[wanted[i]] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
    except Exception as exc:  # PyAV raises av.error.* (subclasses of OSError / ValueError)
        raise DataError(
            f"cannot decode frames of video {path}: decord: {decord_reason}; PyAV: {_short(exc)}"
        ) from exc
    missing = [int(indices[k]) for k, f in enumerate(frames) if f is None]
    if missing:
        raise DataError(
            f"cannot decode frames {missing} of video {path}: decord: {decord_reason}; "
            "PyAV: the video ends before them"
        )
    return np.stack(cast(list[np.ndarray], frames))  # no frame is missing


def _short(exc: BaseException, limit: int = 300) -> str:
    """First line of an exception message, trimmed (decord messages carry long C++ traces)."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., 3, H, W) -> float32 ``(x / 255 - CLIP_MEAN) / CLIP_STD``, on the frames' device."""
    import torch

    mean, std = _clip_constants(frames.device)
    return (frames.to(torch.float32) / 255.0 - mean) / std


_CLIP_CONSTANTS: dict = {}  # device -> CLIP's mean and std on it


def _clip_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP's mean and std as (3, 1, 1) float32 tensors on `device`, made once per device (a tensor
    made from Python numbers on a GPU is a copy from the host)."""
    import torch

    if device not in _CLIP_CONSTANTS:
        _CLIP_CONSTANTS[device] = (torch.tensor(CLIP_MEAN, dtype=torch.float32, device=device).view(3, 1, 1),
                                   torch.tensor(CLIP_STD, dtype=torch.float32, device=device).view(3, 1, 1))
    return _CLIP_CONSTANTS[device]


def pad_frames(frames: np.ndarray, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad (n, 3, S, S) frames to (max_frames, 3, S, S).

    Returns the padded frames and an int64 mask of length ``max_frames`` (1 real, 0 padding).
    """
    n = frames.shape[0]
    if n > max_frames:
        raise DataError(f"cannot pad {n} frames to max_frames={max_frames}")
    padded = np.zeros((max_frames, *frames.shape[1:]), dtype=frames.dtype)
    padded[:n] = frames
    mask = np.zeros(max_frames, dtype=np.int64)
    mask[:n] = 1
    return padded, mask
