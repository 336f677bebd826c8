"""Scalars of a training run, written while it trains, for TensorBoard and for the notebooks.

Every run of `tclib.train.train` writes into its own folder (a stage's `run/`):

    tensorboard/   TensorBoard event files: `tensorboard --logdir results/<exp>` finds every run
    scalars.csv    the same numbers, one row per (step, name, value), appended as they come

The loop writes `loss`, `loss/<term>`, `lr/<group>`, `samples_per_s`, `data_wait_share` and, on a GPU,
`gpu_memory_peak_gb` every few steps, and `epoch_loss` once per epoch. Nothing is held in memory:
rows go to the file as they are written, and the file is flushed at every write, so that
`read_training_log` sees a run in progress.

A run resumed after an epoch's checkpoint (at `start_step`, the optimizer steps done by then)
drops what the interrupted run wrote after that checkpoint: the rows of scalars.csv past
`start_step`, and in TensorBoard every event past it (TensorBoard hides events at and after its
`purge_step`, so that is `start_step + 1`). A run started afresh (`start_step` 0) drops all of an
earlier attempt's.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

__all__ = ["TrainingLog", "read_training_log", "read_training_logs"]

SCALARS = "scalars.csv"
TENSORBOARD = "tensorboard"
COLUMNS = ["step", "name", "value"]
FLUSH_SECONDS = 10  # TensorBoard's event files; scalars.csv is flushed at every write


class TrainingLog:
    """Scalars of a training run, written as it trains: TensorBoard event files under <directory>/tensorboard/
    and the same rows in <directory>/scalars.csv (step, name, value).

    `enabled` False (processes other than rank 0): every method does nothing and nothing is written.
    `start_step` > 0 (a run resumed after an epoch's checkpoint): what the interrupted run wrote after
    step `start_step` is dropped (see the module's docstring)."""

    def __init__(self, directory: Path, enabled: bool = True, start_step: int = 0):
        self.directory = Path(directory)
        self._rows = self._writer = self._file = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter  # imported by the process that writes only

        self.directory.mkdir(parents=True, exist_ok=True)
        kept = start_step if start_step > 0 else -1  # a fresh start keeps nothing of an earlier attempt
        _truncate(self.directory / SCALARS, kept)
        self._file = open(self.directory / SCALARS, "a", newline="")
        self._rows = csv.writer(self._file)
        self._writer = SummaryWriter(str(self.directory / TENSORBOARD), purge_step=kept + 1,
                                     flush_secs=FLUSH_SECONDS)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        """One row per name at `step` (values: numbers or 0-d tensors already on the host)."""
        if self._writer is None or self._rows is None or self._file is None:  # disabled or closed: all three
            return
        for name, value in scalars.items():
            value = float(value)
            self._rows.writerow([int(step), name, repr(value)])
            self._writer.add_scalar(name, value, int(step))
        self._file.flush()

    def close(self) -> None:
        if self._writer is None or self._file is None:
            return
        self._writer.close()
        self._file.close()
        self._rows = self._writer = self._file = None

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _truncate(path: Path, last_step: int) -> None:
    """Keep the header and the rows of scalars.csv at or before `last_step` (a broken last row of a run
    that was killed is dropped too), reading and writing a row at a time."""
    kept = path.with_name(path.name + ".part")
    with open(kept, "w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(COLUMNS)
        if path.is_file() and last_step >= 0:
            with open(path, newline="") as old:
                rows.writerows(row for row in csv.reader(old) if -1 < _row_step(row) <= last_step)
    os.replace(kept, path)


def _row_step(row: list[str]) -> int:
    """The step of a whole row of scalars.csv; -1 for the header or a broken row."""
    try:
        float(row[2])
        return int(row[0]) if len(row) == 3 else -1
    except (ValueError, IndexError):
        return -1


def read_training_log(directory: Path) -> pd.DataFrame:
    """The rows of <directory>/scalars.csv (columns step, name, value), in the order written; an empty frame
    with those columns when the run wrote none (one trained before these logs existed)."""
    path = Path(directory) / SCALARS
    if not path.is_file():
        return _empty()
    frame = pd.read_csv(path, on_bad_lines="skip")
    frame["step"] = pd.to_numeric(frame["step"], errors="coerce")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame = frame.dropna(subset=["step", "name"])  # a row being written as this reads
    return frame.astype({"step": "int64"}).reset_index(drop=True)[COLUMNS]


def read_training_logs(folders: Mapping[str, Path]) -> pd.DataFrame:
    """The scalars of several runs ({run: its folder}), with a column `run`; runs that wrote none are left out."""
    frames = [read_training_log(folder).assign(run=run) for run, folder in folders.items()]
    frames = [frame for frame in frames if len(frame)] or [_empty().assign(run="")]
    return pd.concat(frames, ignore_index=True)[["run", *COLUMNS]]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype="int64"), "name": pd.Series(dtype="str"),
                         "value": pd.Series(dtype="float64")})
