"""`tclib migrate`: stage folders made before identities were location-independent, adopted in one
explicit step (the whole small demo made by that rule: tests/test_golden.py)."""

import json
from pathlib import Path

import pytest

from tclib.clean import clean, format_report
from tclib.errors import TclibError
from tclib.migrate import Migration, MigrationReport, adopt_folder
from tclib.params import Params
from tclib.stages import Stage, made_by_earlier_rule

EARLIER = {"teacher": "xclip", "checkpoint": {"path": "/old/place/xclip.bin", "size": 700, "mtime_ns": 1}}
NEW = {"teacher": "xclip", "checkpoint": {"size": 700, "sha256": "ab"}}


def earlier_folder(base: Path, inputs: dict, info: dict | None = None) -> Path:
    """A finished folder as the earlier code wrote it: its record has no "format"."""
    old = Stage(base, inputs)
    old.directory.mkdir(parents=True)
    (old.directory / "stage.json").write_text(json.dumps({"fingerprint": old.fingerprint, "inputs": old.inputs,
                                                          "info": info or {}}))
    (old.directory / "model.pt").write_text("weights")
    return old.directory


def migration(tmp_path: Path, dry_run: bool = False) -> Migration:
    P = Params.from_mapping({"exp": "m", "data_root": str(tmp_path / "data"), "synthetic": True,
                             "clip_model": "tclib-tiny", "clip_pretrained": ""})
    return Migration(P, dry_run, MigrationReport())


def test_an_earlier_folder_is_adopted_under_the_new_fingerprint(tmp_path):
    base = tmp_path / "teachers" / "xclip"
    old = earlier_folder(base, EARLIER, {"checkpoint": "/old/place/xclip.bin"})
    # in place: the earlier inputs are computed exactly; a dry run renames nothing
    looking = migration(tmp_path, dry_run=True)
    assert looking.stage("teachers/xclip/seed0", Stage(base, NEW), EARLIER) == old
    assert [(a.earlier, a.now) for a in looking.report.adopted] == [(old, Stage(base, NEW).directory)]
    assert old.is_dir() and not Stage(base, NEW).directory.exists()
    # after a move the path (and time) differ: matched by file name and size, not by other files
    moved = {"teacher": "xclip", "checkpoint": {"path": "/new/place/xclip.bin", "size": 700, "mtime_ns": 2}}
    assert migration(tmp_path, dry_run=True).stage("t", Stage(base, NEW), moved) == old
    for other in ({**moved["checkpoint"], "size": 701}, {**moved["checkpoint"], "path": "/new/place/other.bin"}):
        assert migration(tmp_path, dry_run=True).stage("t", Stage(base, NEW), {"teacher": "xclip",
                                                                                "checkpoint": other}) is None
    stage = Stage(base, NEW)
    assert migration(tmp_path).stage("t", stage, moved) == old
    assert stage.finished() and not old.exists()
    assert (stage.directory / "model.pt").read_text() == "weights"  # renamed, nothing copied or lost
    record = json.loads(stage.record_file.read_text())
    assert record["inputs"] == NEW and record["format"] == 2
    assert record["info"] == {"checkpoint": "/old/place/xclip.bin", "adopted_from": old.name}
    assert Stage(base, NEW).finished()  # found by its own fingerprint from now on
    assert migration(tmp_path).stage("t", Stage(base, NEW), moved) is None  # a second migration: nothing to do


def test_several_candidate_folders_are_one_problem_and_none_is_adopted(tmp_path):
    base = tmp_path / "teachers" / "xclip"
    first = earlier_folder(base, EARLIER)
    second = earlier_folder(base, {**EARLIER, "checkpoint": {**EARLIER["checkpoint"], "path": "/b/xclip.bin"}})
    moved = {"teacher": "xclip", "checkpoint": {"path": "/new/place/xclip.bin", "size": 700, "mtime_ns": 2}}
    m = migration(tmp_path)
    assert m.stage("teachers/xclip/seed0", Stage(base, NEW), moved) is None
    [problem] = m.report.problems
    assert problem == (f"{base}: 2 folders of an earlier tclib hold the stage teachers/xclip/seed0 "
                       f"({', '.join(sorted([first.name, second.name]))}); none adopted: move all but one out of "
                       f"{base} and run `tclib migrate` again")
    assert first.is_dir() and second.is_dir() and not m.report.adopted


def test_a_folder_in_the_way_of_an_adoption_is_an_error_of_the_kit_naming_both(tmp_path):
    earlier, directory = tmp_path / "earlier", tmp_path / "new"
    earlier.mkdir()
    (earlier / "model.pt").write_text("weights")
    directory.mkdir()
    (directory / "notes.txt").write_text("mine")
    with pytest.raises(TclibError, match=r"new is in the way of the finished run .*earlier; move one of them away"):
        adopt_folder(earlier, directory)
    assert (earlier / "model.pt").read_text() == "weights" and (directory / "notes.txt").read_text() == "mine"
    (directory / "notes.txt").unlink()  # an empty folder left by a run that did nothing yet is replaced
    adopt_folder(earlier, directory)
    assert (directory / "model.pt").read_text() == "weights" and not earlier.exists()


def test_a_stage_that_begins_beside_earlier_folders_says_to_migrate_in_one_line(tmp_path, caplog):
    base = tmp_path / "teachers" / "xclip"
    old = earlier_folder(base, EARLIER)
    done = Stage(base, {"teacher": "xclip", "seed": 3})
    done.begin()
    done.finish()
    frames = tmp_path / "frames" / "0123"  # a frame cache of that rule: a complete manifest and no record
    frames.mkdir(parents=True)
    (frames / "manifest.json").write_text(json.dumps({"complete": True}))
    assert made_by_earlier_rule(old) and made_by_earlier_rule(frames) and not made_by_earlier_rule(done.directory)
    caplog.clear()
    with caplog.at_level("INFO", logger="tclib.stages"):
        Stage(base, NEW).begin()
    [warning] = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (f"{base}: no finished run with these inputs, but 1 folder(s) made by an earlier tclib lie here "
                       f"({old.name}): if one of them is this stage, `tclib migrate <params file>` adopts it")
    caplog.clear()
    with caplog.at_level("INFO", logger="tclib.stages"):
        Stage(tmp_path / "students" / "x", {"a": 1}).begin()  # nothing of that rule there: no warning
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_clean_never_removes_a_folder_of_the_earlier_rule(tmp_path, monkeypatch):
    exp = tmp_path / "results" / "m"
    old = earlier_folder(exp / "teachers" / "xclip", EARLIER)
    (old / "features" / "abc").mkdir(parents=True)  # its feature cache, inside it
    (old / "features" / "abc" / "manifest.json").write_text("{}")
    other = Stage(exp / "teachers" / "xclip", {"teacher": "xclip", "seed": 9})  # today's rule, unreferenced
    other.begin()
    other.finish()
    monkeypatch.setattr("tclib.clean.load_params", lambda path: Params.from_mapping(
        {"exp": "m", "results_dir": str(tmp_path / "results"), "data_root": str(tmp_path / "data"),
         "synthetic": True, "clip_model": "tclib-tiny", "clip_pretrained": ""}))
    monkeypatch.setattr("tclib.clean.referenced", lambda P: set())
    report = clean(["params/m.yaml"])
    assert [folder for folder, _ in report.removed] == [other.directory.resolve()]
    assert report.earlier_rule == [old.resolve(), (old / "features" / "abc").resolve()]
    assert (old / "model.pt").read_text() == "weights" and (old / "features" / "abc" / "manifest.json").is_file()
    assert f"kept {old.resolve()}: made by an earlier tclib (`tclib migrate` adopts it" in format_report(report, False)
