"""JPEG frame rows: what is written reads back, padding costs nothing, damage is named."""

import pickle

import numpy as np
import pytest

from tclib.data.jpegrows import JpegRows, index_path
from tclib.errors import DataError


def smooth_frames(seed: int, count: int = 3, size: int = 32) -> np.ndarray:
    """(count, 3, size, size) uint8 gradients: content JPEG keeps within a grey level or two."""
    y, x = np.mgrid[0:size, 0:size]
    frames = [np.stack([(x * 4 + seed * 20) % 256, (y * 4 + k * 30) % 256, np.full_like(x, 100 + seed)])
              for k in range(count)]
    return np.asarray(frames, dtype=np.uint8)


def test_rows_written_in_any_order_read_back_close_and_padding_is_free(tmp_path):
    rows = JpegRows.create(tmp_path / "f.jpeg", (3, 4, 3, 32, 32), quality=95)
    written = {}
    for row in (2, 0):  # row 1 never written: all padding
        frames = np.zeros((4, 3, 32, 32), np.uint8)
        frames[:3] = smooth_frames(row)  # the last slot is padding
        rows.write(row, frames)
        written[row] = frames
    rows.flush()
    index = np.load(index_path(tmp_path / "f.jpeg"))
    assert (index[:, 3, 1] == 0).all() and (index[1, :, 1] == 0).all()  # padding: no bytes
    assert index[..., 1].sum() == (tmp_path / "f.jpeg").stat().st_size
    reader = pickle.loads(pickle.dumps(JpegRows(tmp_path / "f.jpeg", (3, 32, 32), 95)))
    got = reader.read(np.array([2, 1, 0]))
    assert got.shape == (3, 4, 3, 32, 32)
    assert (got[1] == 0).all() and (got[:, 3] == 0).all()
    for position, row in ((0, 2), (2, 0)):
        assert np.abs(got[position].astype(int) - written[row]).max() <= 4
    with pytest.raises(PermissionError):
        reader.write(0, written[0])


def test_damaged_bytes_are_reported_with_the_file(tmp_path):
    rows = JpegRows.create(tmp_path / "f.jpeg", (1, 2, 3, 32, 32), quality=90)
    rows.write(0, smooth_frames(0, count=2))
    rows.close()
    blob = tmp_path / "f.jpeg"
    blob.write_bytes(b"\x00" * blob.stat().st_size)
    with pytest.raises(DataError, match=r"f\.jpeg: frame 0 of row 0 does not decode as JPEG"):
        JpegRows(blob, (3, 32, 32), 90).read(np.array([0]))
    blob.write_bytes(b"")
    with pytest.raises(DataError, match=r"f\.jpeg: unexpected end of file"):
        JpegRows(blob, (3, 32, 32), 90).read(np.array([0]))
