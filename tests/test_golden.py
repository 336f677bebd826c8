"""The small demo against what it wrote before the code was reorganised: the same tables, byte for byte
(tests/golden/small/ holds them), on the same machine."""

import pytest

from conftest import GOLDEN


@pytest.mark.parametrize("name", ["table.md", "attention_correlation.csv"])
def test_the_small_demo_writes_the_recorded_results(demo_run, name):
    exp_dir, _ = demo_run
    assert (exp_dir / name).read_text() == (GOLDEN / "small" / name).read_text()
