"""tclib.experiment.runs: a run name read into its RunSpec in one place (labels, heads, teaching)."""

import pytest

from tclib.errors import ParamsError
from tclib.experiment.runs import BASES, parse_run, run_problems, teacher_label


def test_a_run_name_gives_its_spec():
    spec = parse_run("teachclip:xclip+ts2net")
    assert (spec.name, spec.label, spec.temporal, spec.afa, spec.coarse, spec.fine) == (
        "teachclip:xclip+ts2net", "TeachCLIP (X-CLIP + TS2-Net)", "seqTransf", True, True, True)
    assert spec.teachers == ("xclip", "ts2net") and spec.teachers_of(["xpool"]) == ["xclip", "ts2net"]
    coarse = parse_run("teachclip-coarse:xpool")
    assert coarse.label == "TeachCLIP coarse only (X-Pool)" and coarse.coarse and not coarse.fine
    plain = parse_run("teachclip")
    assert plain.teachers is None and plain.teachers_of(["xclip", "xpool"]) == ["xclip", "xpool"]
    assert plain.label == "TeachCLIP (coarse + fine)"
    baseline = parse_run("clip4clip-meanP")
    assert (baseline.temporal, baseline.afa, baseline.coarse) == ("meanP", False, False)
    assert baseline.teachers_of(["xclip"]) == []  # a CLIP4Clip run has no teachers
    assert [parse_run(name).label for name in BASES] == [label for label, *_ in BASES.values()]
    assert teacher_label("ts2net") == "TS2-Net (teacher)" and teacher_label("mine") == "mine (teacher)"


@pytest.mark.parametrize("name,why", [("mine", "may only name"), ("clip4clip-seqTransf:xclip", "only teachclip runs")])
def test_a_name_that_is_no_run_says_why(name, why):
    with pytest.raises(ParamsError, match=why):
        parse_run(name)


def test_run_problems_name_each_run():
    assert run_problems(["teachclip", "teachclip:xpool"], ["xclip"]) == [
        "'teachclip:xpool': the teachers after ':' must each be one of teachers ['xclip']"]
    assert run_problems(["teachclip"], []) == ["'teachclip': is taught by every teacher of teachers, and teachers "
                                               "is empty"]
    assert run_problems(["teachclip", "teachclip"], ["xclip"]) == ["must not name a run twice"]
    assert run_problems(["teachclip", 3], ["xclip"]) == ["must be a list of run names"]
    assert run_problems(["teachclip:xpool"], None) == []  # teachers unreadable: not checked against them
