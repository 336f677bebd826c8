"""Tests of tclib.data.pool: the worker processes of every decoding loop."""

import multiprocessing
import os

import pytest

from tclib.data.pool import parallel_map


def square_in_child(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_results_come_in_the_order_of_the_tasks_from_worker_processes():
    results = list(parallel_map(square_in_child, list(range(12)), workers=2, desc="squares"))
    assert [r for r, _ in results] == [x * x for x in range(12)]
    assert os.getpid() not in {pid for _, pid in results}
    assert not multiprocessing.active_children()


def test_one_worker_runs_here_and_unordered_results_are_all_there():
    assert {pid for _, pid in parallel_map(square_in_child, [1, 2], workers=1, desc="here")} == {os.getpid()}
    unordered = parallel_map(square_in_child, list(range(8)), workers=2, desc="any order", ordered=False)
    assert sorted(r for r, _ in unordered) == [x * x for x in range(8)]


def test_the_processes_end_when_the_caller_stops_reading_or_a_task_fails():
    results = parallel_map(square_in_child, list(range(50)), workers=2, desc="stopped")
    next(results)
    results.close()  # what a break or an exception in the caller's loop does to the generator
    assert not multiprocessing.active_children()
    with pytest.raises(ValueError, match="three"):
        list(parallel_map(fail_on_three, list(range(6)), workers=2, desc="failing"))
    assert not multiprocessing.active_children()


def test_a_window_gives_out_tasks_a_few_at_a_time_in_order():
    results = parallel_map(square_in_child, list(range(20)), workers=2, desc="windowed", window=3)
    assert [r for r, _ in results] == [x * x for x in range(20)]
    assert not multiprocessing.active_children()
