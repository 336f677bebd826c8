"""Training scalars: what scalars.csv holds is what TensorBoard reads; other ranks write nothing; a resumed
run drops what the interrupted one wrote after its checkpoint; the notebook's view of several runs."""

import itertools
import math
import time
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tclib import notebook
from tclib.monitor import TrainingLog, read_training_log, read_training_logs
from tclib.plots import Figure


@pytest.fixture(autouse=True)
def event_files_a_second_apart(monkeypatch):
    """TensorBoard reads a folder's event files in the order of their names: the second each was made,
    then a count of the process's writers compared as text ("10" before "9"). A resumed run starts
    seconds after the interrupted one; in these tests each writer starts a second after the last."""
    from tensorboard.summary.writer import event_file_writer

    clock = itertools.count(int(time.time()))
    monkeypatch.setattr(event_file_writer, "time", SimpleNamespace(**{**vars(time), "time": lambda: next(clock)}))


def scalars_at(step: int, shift: float = 0.0) -> dict[str, float]:
    return {"loss": 2.0 / step + shift, "loss/contrastive": 1.5 / step, "lr/clip": 1e-7 * step, "lr/new": 1e-4,
            "samples_per_s": 100.0 + step, "data_wait_share": 0.25}


def write_run(folder, steps, start_step: int = 0, shift: float = 0.0, epoch_every: int = 5):
    with TrainingLog(folder, start_step=start_step) as log:
        for step in steps:
            log.write(step, scalars_at(step, shift))
            if step % epoch_every == 0:
                log.write(step, {"epoch_loss": torch.tensor(1.0 / step, dtype=torch.float64)})  # a 0-d tensor is taken too


def tensorboard_rows(folder) -> pd.DataFrame:
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    rows = [(e.step, tag, e.value) for tag in events.Tags()["scalars"] for e in events.Scalars(tag)]
    return pd.DataFrame(rows, columns=["step", "name", "value"])


def in_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["name", "step"]).reset_index(drop=True)


def assert_same_rows(csv_rows: pd.DataFrame, tensorboard: pd.DataFrame) -> None:
    csv_rows, tensorboard = in_order(csv_rows), in_order(tensorboard)
    assert csv_rows[["step", "name"]].values.tolist() == tensorboard[["step", "name"]].values.tolist()
    assert csv_rows["value"].to_numpy() == pytest.approx(tensorboard["value"].to_numpy(), rel=1e-6)  # float32


def test_scalars_csv_and_tensorboard_hold_the_same_rows(tmp_path):
    write_run(tmp_path, range(1, 11))
    rows = read_training_log(tmp_path)
    assert list(rows.columns) == ["step", "name", "value"]
    assert len(rows) == 10 * 6 + 2
    assert rows.iloc[0].tolist() == [1, "loss", 2.0]  # in the order written, exact
    assert rows.loc[rows.name == "epoch_loss", "step"].tolist() == [5, 10]
    assert_same_rows(rows, tensorboard_rows(tmp_path))


def test_rows_can_be_read_while_the_run_writes(tmp_path):
    log = TrainingLog(tmp_path)
    log.write(3, {"loss": 0.5})
    assert read_training_log(tmp_path).values.tolist() == [[3, "loss", 0.5]]
    log.write(4, {"loss": float("nan")})  # a diverged loss is logged as such
    assert math.isnan(read_training_log(tmp_path).value.iloc[-1])
    log.close()
    log.close()


def test_a_disabled_log_writes_nothing(tmp_path):
    folder = tmp_path / "run"
    log = TrainingLog(folder, enabled=False, start_step=3)
    log.write(1, {"loss": 1.0})
    log.close()
    assert not folder.exists()
    assert read_training_log(folder).empty and list(read_training_log(folder).columns) == ["step", "name", "value"]


def test_a_resumed_run_drops_what_was_written_after_its_checkpoint(tmp_path):
    write_run(tmp_path, range(1, 9))  # checkpoint after step 5, interrupted at step 8
    with open(tmp_path / "scalars.csv", "a") as f:
        f.write("9,loss,0.")  # killed in the middle of a row
    write_run(tmp_path, range(6, 11), start_step=5, shift=10.0)
    rows = read_training_log(tmp_path)
    expected = pd.DataFrame([(s, n, v) for s in range(1, 11) for n, v in scalars_at(s, 10.0 * (s > 5)).items()]
                            + [(5, "epoch_loss", 0.2), (10, "epoch_loss", 0.1)], columns=["step", "name", "value"])
    assert in_order(rows).values.tolist() == in_order(expected).values.tolist()
    assert_same_rows(rows, tensorboard_rows(tmp_path))


def test_a_fresh_start_drops_an_earlier_attempt(tmp_path):
    write_run(tmp_path, range(1, 4))
    write_run(tmp_path, range(1, 3), shift=10.0)
    rows = read_training_log(tmp_path)
    assert sorted(set(rows.step)) == [1, 2] and rows.loc[rows.name == "loss", "value"].tolist() == [12.0, 11.0]
    assert_same_rows(rows, tensorboard_rows(tmp_path))


def test_training_scalars_view_draws_the_runs_that_logged_and_notes_when_none_did(tmp_path):
    write_run(tmp_path / "teachclip", range(1, 6))
    (tmp_path / "meanP").mkdir()  # trained before scalars were logged
    logs = read_training_logs({"teachclip": tmp_path / "teachclip", "meanP": tmp_path / "meanP"})
    assert set(logs.run) == {"teachclip"} and list(logs.columns) == ["run", "step", "name", "value"]

    figure = notebook.training_scalars_view({"teachclip": tmp_path / "teachclip", "meanP": tmp_path / "meanP"})
    assert isinstance(figure, Figure)
    note = notebook.training_scalars_view({"meanP": tmp_path / "meanP"})
    assert not isinstance(note, Figure) and "meanP" in note._repr_markdown_()
