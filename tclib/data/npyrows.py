"""Rows of a .npy file read and written with plain (positional) file I/O, not a memory map.

A memory map counts every page it has touched in the process's resident memory until it is
closed: reading a whole 30 GB frame cache through one, batch by batch, ends with a process that
looks 30 GB large. Reading rows into fresh arrays keeps a process at the batch it holds; the pages
stay in the operating system's page cache, shared and reclaimable, whoever reads them next.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["NpyRows"]


class NpyRows:
    """Row access to an existing .npy file (C order). `mode` "r" reads, "r+" also writes.

    Pickles by path (DataLoader workers reopen the file)."""

    def __init__(self, path: str | os.PathLike, mode: str = "r") -> None:
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        self.path, self.mode = Path(path), mode
        try:
            self._file = open(self.path, "rb" if mode == "r" else "r+b", buffering=0)
        except OSError as exc:
            raise DataError(f"cannot open {self.path}: {exc}") from exc
        try:
            version = np.lib.format.read_magic(self._file)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(self._file)
        except ValueError as exc:
            self._file.close()
            raise DataError(f"{self.path} is not a .npy file: {exc}") from exc
        if fortran:
            self._file.close()
            raise DataError(f"{self.path} is stored in Fortran order; expected C order")
        self.shape, self.dtype, self.offset = tuple(shape), np.dtype(dtype), self._file.tell()
        self.row_shape = self.shape[1:]
        self.row_nbytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        size = self.path.stat().st_size
        if size < self.offset + self.shape[0] * self.row_nbytes:
            self._file.close()
            raise DataError(f"{self.path} is truncated: {size} bytes, {self.offset + self.shape[0] * self.row_nbytes} "
                            f"expected for {self.dtype} {self.shape}")

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the data (the header not counted), as numpy's nbytes."""
        return self.shape[0] * self.row_nbytes

    def __getitem__(self, index: int | slice | np.ndarray) -> np.ndarray:
        """Rows as a new array: an int gives one row, a slice or integer array several."""
        if isinstance(index, (int, np.integer)):
            i = int(index) + (self.shape[0] if index < 0 else 0)
            return self.read(np.array([i]))[0]
        if isinstance(index, slice):
            return self.read(np.arange(self.shape[0])[index])
        return self.read(np.asarray(index, dtype=np.int64))

    def read(self, rows: np.ndarray) -> np.ndarray:
        """A new array of `rows` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        self.read_into(rows, out, np.arange(len(rows)))
        return out

    def read_into(self, rows: np.ndarray, out: np.ndarray, positions: np.ndarray) -> None:
        """Read row rows[i] straight into out[positions[i]] (out: C-contiguous, rows of row_shape);
        runs that are consecutive in both are read in one call."""
        rows, positions = np.asarray(rows, dtype=np.int64), np.asarray(positions, dtype=np.int64)
        if len(rows) == 0:
            return
        flat = out.reshape(len(out), -1).view(np.uint8)
        i = 0
        while i < len(rows):
            j = i + 1
            while j < len(rows) and rows[j] == rows[j - 1] + 1 and positions[j] == positions[j - 1] + 1:
                j += 1
            self._read_into(flat[positions[i]:positions[i] + j - i].data.cast("B"), int(rows[i]))
            i = j

    def _read_into(self, buffer: memoryview, row: int) -> None:
        # Positional reads: a forked DataLoader worker shares the open file, and its position, with
        # the other workers; a seek followed by a read could read where another worker just sought.
        if not 0 <= row < self.shape[0]:
            raise IndexError(f"row {row} out of range for {self.path} ({self.shape[0]} rows)")
        start, done = self.offset + row * self.row_nbytes, 0
        while done < len(buffer):
            got = os.preadv(self._file.fileno(), [buffer[done:]], start + done)
            if not got:
                raise DataError(f"{self.path}: unexpected end of file reading row {row}")
            done += got

    def write(self, row: int, value: np.ndarray) -> None:
        """Store `value` (shape row_shape) as row `row`."""
        if self.mode != "r+":
            raise PermissionError(f"{self.path} is open read-only")
        value = np.ascontiguousarray(value, dtype=self.dtype)
        if value.shape != self.row_shape:
            raise ValueError(f"{self.path}: a row is {self.row_shape}, got {value.shape}")
        if not 0 <= row < self.shape[0]:
            raise IndexError(f"row {row} out of range for {self.path} ({self.shape[0]} rows)")
        self._pwrite(value.tobytes(), self.offset + row * self.row_nbytes)

    def write_rows(self, start: int, values: np.ndarray) -> None:
        """Store `values` (n, *row_shape) as rows start..start+n-1, in one write."""
        if self.mode != "r+":
            raise PermissionError(f"{self.path} is open read-only")
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if values.shape[1:] != self.row_shape or not 0 <= start <= self.shape[0] - len(values):
            raise ValueError(f"{self.path}: cannot store {values.shape} at row {start} of {self.shape}")
        self._pwrite(values.tobytes(), self.offset + start * self.row_nbytes)

    def _pwrite(self, data: bytes, position: int) -> None:
        view, done = memoryview(data), 0
        while done < len(view):
            done += os.pwrite(self._file.fileno(), view[done:], position + done)

    def flush(self) -> None:
        """Make what was written durable (fsync)."""
        if self.mode == "r+":
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    @staticmethod
    def create(path: str | os.PathLike, shape: tuple[int, ...], dtype: np.dtype | type) -> NpyRows:
        """A new zero-filled .npy file of `shape` (sparse where the file system allows), open "r+"."""
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                  "shape": tuple(shape)}
        with open(path, "wb") as file:
            np.lib.format.write_array_header_2_0(file, header)
            file.truncate(file.tell() + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        return NpyRows(path, "r+")

    def __getstate__(self) -> dict:
        return {"path": str(self.path), "mode": self.mode}

    def __setstate__(self, state: dict) -> None:
        type(self).__init__(self, state["path"], state["mode"])

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()
