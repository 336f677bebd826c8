"""Rows of frames stored as JPEG: the frame cache's compressed format.

A raw frame cache keeps every frame as 3 x S x S bytes (150 KB at 224 px), padding included, so a
data set of long videos at 64 frames runs to hundreds of GB. Here one shard is two files:

    frames-00000.jpeg        the JPEG bytes of every stored frame, appended video after video
    frames-00000.index.npy   int64 (videos, max_frames, 2): each frame's (offset, length) in it

A frame of length 0 is all zeros: padding slots, and videos that failed to decode, take no space
(and a frame that is black in the video reads back as the same zeros). A video's frames lie
side by side, so reading a video is one read of its byte range, then one JPEG decode per frame
(libjpeg-turbo through Pillow). Frames are stored without chroma subsampling (4:4:4). JPEG is
lossy: at the default quality 90 a 224-px frame reads back within a few grey levels of the raw one
(docs/benchmarks.md gives the measured difference, size and speed); the format is chosen per experiment (``frame_cache_format``) and is part of the cache's
identity, so raw and JPEG caches never mix.

Writes append: a video written again after an interrupted build is appended anew, and the bytes
of its earlier copy stay unused in the file. The index is what counts, and it is made durable
with the blob before the manifest marks the video done.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .npyrows import NpyRows

__all__ = ["JpegRows", "encode_frames", "index_path"]

EncodedFrames = list  # one bytes object per frame slot; b"" for an all-zero frame


def index_path(blob: str | os.PathLike) -> Path:
    """frames-00000.jpeg -> frames-00000.index.npy"""
    blob = Path(blob)
    return blob.with_name(blob.stem + ".index.npy")


def encode_frames(frames: np.ndarray, quality: int) -> EncodedFrames:
    """JPEG bytes (4:4:4) of each frame of `frames` (F, 3, S, S) uint8; b"" for an all-zero frame."""
    out = []
    for frame in frames:
        if not frame.any():
            out.append(b"")
            continue
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(frame.transpose(1, 2, 0))).save(
            buffer, "JPEG", quality=quality, subsampling=0)
        out.append(buffer.getvalue())
    return out


def decode_frame(data: bytes | memoryview) -> np.ndarray:
    """(3, S, S) uint8 of one frame's JPEG bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


class JpegRows:
    """Rows (F, 3, S, S) uint8 of a JPEG shard; `mode` "r" reads, "r+" also appends.

    The same row interface as :class:`tclib.data.npyrows.NpyRows`: ``shape``, ``row_shape``,
    ``dtype``, ``read``, ``read_into``, ``write``, ``flush``, ``close``. Pickles by path."""

    dtype = np.dtype(np.uint8)

    def __init__(self, path: str | os.PathLike, frame_shape: tuple[int, int, int], quality: int,
                 mode: str = "r") -> None:
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        self.path, self.frame_shape, self.quality, self.mode = Path(path), tuple(frame_shape), int(quality), mode
        self.index = NpyRows(index_path(self.path), mode)
        if self.index.dtype != np.int64 or len(self.index.row_shape) != 2 or self.index.row_shape[1] != 2:
            raise DataError(f"{self.index.path} holds {self.index.dtype} {self.index.shape}, "
                            "expected int64 (videos, frames, 2)")
        try:
            self._fd: int | None = os.open(self.path, os.O_RDONLY if mode == "r" else os.O_RDWR)
        except OSError as exc:
            raise DataError(f"cannot open {self.path}: {exc}") from exc
        self.shape = (self.index.shape[0], self.index.row_shape[0], *self.frame_shape)
        self.row_shape = self.shape[1:]

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.row_shape), dtype=np.uint8)
        self.read_into(rows, out, np.arange(len(rows)))
        return out

    def read_into(self, rows: np.ndarray, out: np.ndarray, positions: np.ndarray) -> None:
        """Decode row rows[i] into out[positions[i]]: one read of each video's bytes, then its frames."""
        rows, positions = np.asarray(rows, dtype=np.int64), np.asarray(positions, dtype=np.int64)
        if len(rows) == 0:
            return
        spans = self.index.read(rows)  # (n, F, 2)
        for row, span, position in zip(rows, spans, positions, strict=True):
            offsets, lengths = span[:, 0], span[:, 1]
            stored = np.flatnonzero(lengths > 0)
            out[position] = 0
            if stored.size == 0:
                continue
            start, end = int(offsets[stored].min()), int((offsets[stored] + lengths[stored]).max())
            data = os.pread(self._open_fd(), end - start, start)
            if len(data) != end - start:
                raise DataError(f"{self.path}: unexpected end of file reading bytes {start}..{end}")
            view = memoryview(data)
            for f in stored:
                part = view[int(offsets[f]) - start:int(offsets[f] + lengths[f]) - start]
                try:
                    frame = decode_frame(part)
                except OSError as exc:  # Pillow's error for bytes that are no image
                    raise DataError(f"{self.path}: frame {f} of row {int(row)} does not decode "
                                    f"as JPEG: {exc}") from exc
                if frame.shape != self.frame_shape:
                    raise DataError(f"{self.path}: a frame decodes to {frame.shape}, expected {self.frame_shape}")
                out[position, f] = frame

    def write(self, row: int, value: np.ndarray | EncodedFrames) -> None:
        """Store row `row`: frames (F, 3, S, S) uint8, or their :func:`encode_frames` bytes."""
        if self.mode != "r+":
            raise PermissionError(f"{self.path} is open read-only")
        if isinstance(value, np.ndarray):
            if value.shape != self.row_shape:
                raise ValueError(f"{self.path}: a row is {self.row_shape}, got {value.shape}")
            value = encode_frames(value, self.quality)
        if len(value) != self.row_shape[0]:
            raise ValueError(f"{self.path}: a row has {self.row_shape[0]} frames, got {len(value)}")
        end = os.fstat(self._open_fd()).st_size
        span = np.zeros((self.row_shape[0], 2), dtype=np.int64)
        position = end
        for f, data in enumerate(value):
            span[f] = (position if data else 0, len(data))
            position += len(data)
        data, done = memoryview(b"".join(value)), 0
        while done < len(data):
            done += os.pwrite(self._open_fd(), data[done:], end + done)
        self.index.write(row, span)

    def flush(self) -> None:
        """Make what was written durable: the JPEG bytes first, then the index that points into them."""
        if self.mode == "r+":
            os.fsync(self._open_fd())
            self.index.flush()

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def close(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None
        self.index.close()

    @staticmethod
    def create(path: str | os.PathLike, shape: tuple[int, ...], quality: int) -> JpegRows:
        """An empty shard of `shape` (videos, F, 3, S, S): an empty blob and a zero index, open "r+"."""
        videos, frames, channels, height, width = shape
        Path(path).write_bytes(b"")
        NpyRows.create(index_path(path), (videos, frames, 2), np.int64).close()
        return JpegRows(path, (channels, height, width), quality, "r+")

    def __getstate__(self) -> dict:
        return {"path": str(self.path), "frame_shape": self.frame_shape, "quality": self.quality, "mode": self.mode}

    def __setstate__(self, state: dict) -> None:
        type(self).__init__(self, state["path"], state["frame_shape"], state["quality"], state["mode"])

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
