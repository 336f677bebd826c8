"""Rows of .npy files read and written with file I/O: the same bytes numpy reads, clear errors."""

import pickle

import numpy as np
import pytest

from tclib.data.npyrows import NpyRows
from tclib.errors import DataError


def test_written_rows_read_back_as_numpy_loads_them(tmp_path):
    path = tmp_path / "a.npy"
    rows = NpyRows.create(path, (6, 2, 3), np.int64)
    for i in range(6):
        rows.write(i, np.full((2, 3), 10 * i) + np.arange(3))
    rows.flush()
    expected = np.stack([np.full((2, 3), 10 * i) + np.arange(3) for i in range(6)])
    np.testing.assert_array_equal(np.load(path), expected)
    reader = NpyRows(path)
    # out of order, repeated, runs of consecutive rows: the rows asked for, in that order
    picks = np.array([5, 0, 1, 2, 2, 4])
    np.testing.assert_array_equal(reader.read(picks), expected[picks])
    assert reader.read(np.array([], dtype=int)).shape == (0, 2, 3)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reader)).read(np.array([3])), expected[[3]])
    with pytest.raises(IndexError, match="row 6"):
        reader.read(np.array([6]))
    with pytest.raises(PermissionError):
        reader.write(0, expected[0])


def test_files_numpy_wrote_are_read_too(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (4, 3, 5, 5), dtype=np.uint8)
    np.save(tmp_path / "b.npy", data)
    np.testing.assert_array_equal(NpyRows(tmp_path / "b.npy").read(np.array([3, 1])), data[[3, 1]])


def test_a_truncated_or_foreign_file_is_a_data_error_naming_it(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((4, 10), np.uint8))
    raw = (tmp_path / "c.npy").read_bytes()
    (tmp_path / "c.npy").write_bytes(raw[:-15])
    with pytest.raises(DataError, match=r"c\.npy is truncated"):
        NpyRows(tmp_path / "c.npy")
    (tmp_path / "d.npy").write_bytes(b"not an array at all")
    with pytest.raises(DataError, match=r"d\.npy is not a \.npy file"):
        NpyRows(tmp_path / "d.npy")


def _read_many(rows: NpyRows, row: int, count: int, queue) -> None:
    want = np.full(rows.row_shape, row, dtype=rows.dtype)
    queue.put(sum(not np.array_equal(rows.read(np.array([row]))[0], want) for _ in range(count)))


def test_forked_readers_sharing_one_open_file_read_their_own_rows(tmp_path):
    """DataLoader workers are forked: they inherit the open file, and with it one shared file
    position. Reads must not depend on it (positional reads), or two workers read each other's rows."""
    import multiprocessing

    rows = NpyRows.create(tmp_path / "a.npy", (4, 64, 1024), np.uint8)
    for i in range(4):
        rows.write(i, np.full((64, 1024), i, dtype=np.uint8))
    rows.flush()
    reader = NpyRows(tmp_path / "a.npy")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_read_many, args=(reader, row, 3000, queue)) for row in range(4)]
    for w in workers:
        w.start()
    wrong = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join()
    assert wrong == [0, 0, 0, 0]
