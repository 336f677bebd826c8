"""RowView: a read-only, array-like view of the per-video rows (frames or masks) of a frame source,
which reads only the rows it is indexed with."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["RowView", "as_rows", "is_int"]


def is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def as_rows(rows: Sequence[int] | np.ndarray, n: int, where: str) -> np.ndarray:
    """1-D int64 row numbers in range (negative ones count from the end); IndexError otherwise."""
    arr = np.asarray(rows)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"{where}: boolean index of shape {arr.shape} for {n} rows")
        return np.flatnonzero(arr)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{where}: rows must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64).ravel()
    arr = np.where(arr < 0, arr + n, arr)
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise IndexError(f"{where}: row {int(np.asarray(rows).ravel()[bad][0])} is out of range for {n} rows")
    return arr


class RowView:
    """Read-only, array-like view of per-video rows (frames or masks) of a frame source.

    Supports ``len()``, ``shape``, ``dtype``, ``ndim``, iteration, ``np.asarray`` and indexing on
    the first axis by an int (one row), a slice, an integer array or list (rows gathered in the
    given order), a boolean mask or ``...``; further indices in a tuple apply to the result
    (``view[rows, :3]``). Integer-array and slice results are fresh arrays.

    Args:
        n_rows: number of rows.
        row_shape: shape of one row.
        dtype: dtype of the rows.
        take: maps 1-D int64 row numbers (in range) to an array (len(rows), *row_shape).
        one: returns one row.
        name: used in error messages and ``repr``.
    """

    def __init__(self, n_rows: int, row_shape: tuple[int, ...], dtype: np.dtype | type,
                 take: Callable[[np.ndarray], np.ndarray], one: Callable[[int], np.ndarray], name: str) -> None:
        self._n = int(n_rows)
        self._row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self._take = take
        self._one = one
        self._name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self._row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self._row_shape)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[np.ndarray]:
        for row in range(self._n):
            yield self._one(row)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self._take(np.arange(self._n, dtype=np.int64))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            if not key or key[0] is Ellipsis or key[0] is None:
                return np.asarray(self)[key]
            first, rest = key[0], key[1:]
        else:
            first, rest = key, ()
        out, lead = self._rows_of(first)  # lead: the axes of the result that index rows
        return out[(slice(None),) * lead + rest] if rest else out

    def _rows_of(self, first: Any) -> tuple[np.ndarray, int]:
        if first is Ellipsis:
            return np.asarray(self), 1
        if is_int(first):
            row = int(first) + (self._n if first < 0 else 0)
            if not 0 <= row < self._n:
                raise IndexError(f"{self._name}: row {int(first)} is out of range for {self._n} rows")
            return self._one(row), 0
        if isinstance(first, slice):
            return self._take(np.arange(self._n, dtype=np.int64)[first]), 1
        arr = np.asarray(first)
        out = self._take(as_rows(arr, self._n, self._name))
        if arr.dtype != bool and arr.ndim != 1:
            return out.reshape(*arr.shape, *self._row_shape), arr.ndim
        return out, 1

    def __repr__(self) -> str:
        return f"RowView({self._name}, shape={self.shape}, dtype={self.dtype})"
