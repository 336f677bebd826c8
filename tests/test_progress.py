"""Progress reporting: never changes what a loop sees, a few log lines in batch runs."""

import logging

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tclib import progress as progress_mod
from tclib.progress import BATCH_ENV, LogProgress, progress


def epochs_of(loader, wrap, epochs=3):
    return [[b.tolist() for (b,) in wrap(loader)] for _ in range(epochs)]


@pytest.mark.parametrize("batch_run", [False, True], ids=["bar", "log lines"])
def test_a_shuffling_loader_yields_the_same_order_with_or_without_progress(monkeypatch, batch_run):
    if batch_run:
        monkeypatch.setenv(BATCH_ENV, "1")
    else:
        monkeypatch.delenv(BATCH_ENV, raising=False)

    def loader():
        return DataLoader(TensorDataset(torch.arange(20)), batch_size=5, shuffle=True,
                          generator=torch.Generator().manual_seed(0))

    plain = epochs_of(loader(), lambda it: it)
    shown = epochs_of(loader(), lambda it: progress(it, desc="epoch", leave=False))
    assert shown == plain
    assert sorted(sum(plain[0], [])) == list(range(20)) and plain[0] != plain[1]


def test_outside_a_kernel_the_bar_is_tqdm_text_bar(monkeypatch):
    from tqdm.std import tqdm

    monkeypatch.delenv(BATCH_ENV, raising=False)
    assert type(progress(range(3), disable=True)) is tqdm


def test_log_progress_writes_a_line_every_interval_and_one_at_the_end(monkeypatch, caplog):
    clock = [0.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(progress_mod, "EVERY", 25.0)
    with caplog.at_level(logging.INFO, logger="tclib.progress"):
        bar = LogProgress(range(6), desc="decode", unit="video")
        for _ in bar:
            clock[0] += 10  # each item takes 10 s
            bar.set_postfix(failed=0)
    # items end at 10, 20, 30 (30 s since the start: a line), 40, 50, 60 (30 s since the last line: a
    # line); the loop's end (leave=True) has nothing new to say
    assert caplog.messages == ["decode: 3/6 video (50%), 30 s, failed=0", "decode: 6/6 video (100%), 60 s, failed=0"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tclib.progress"):
        for _ in LogProgress(range(4), desc="score"):
            clock[0] += 1
    assert caplog.messages == ["score: 4/4 it (100%), 4 s"]  # the end of a left loop, however short


def test_a_short_inner_loop_that_is_not_left_says_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="tclib.progress"):
        for _ in LogProgress(range(3), desc="epoch 1/10", leave=False):
            pass
    assert caplog.messages == []
