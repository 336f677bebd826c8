"""The small demo against what it wrote before the code was reorganised (tests/golden/small/, recorded
then on one machine): the same retrieval table, the same attention figures up to the last digits a
CPU's BLAS kernels decide, and a project made before it, copied to another folder, adopted by
`tclib migrate` and then found done stage by stage.

tests/golden/small/earlier/ holds the stage records of that earlier run of the small demo (the
folders' records and manifests: what makes a stage done; the weights are not kept). Its stage
folders are named by fingerprints of absolute paths, those of the folder it ran in then.
"""

import os
import shutil
from pathlib import Path

import pandas as pd
from conftest import GOLDEN, new_project, small_demo, small_params

from tclib.clean import stage_folders
from tclib.data.npyrows import NpyRows
from tclib.experiment.data import prepare_data
from tclib.experiment.plan import found_stages, stage_plan
from tclib.files import read_json
from tclib.migrate import migrate
from tclib.params import load_params
from tclib.stages import made_by_earlier_rule, read_record

EARLIER = GOLDEN / "small" / "earlier"


# The demo trains on whatever CPU runs the tests, and matrix products are summed in an order that
# depends on the CPU's BLAS kernels (AVX2, AVX-512, ...): on another CPU the attention figures of
# attention_correlation.csv (means over 16 videos of correlations and weights) differ from the
# recorded ones from the fourth decimal on. A real change of the method (a loss, a weight, the
# sampling) moves them by several hundredths, so they are compared to this many absolute units.
# table.md is rounded to 0.1 % and compared as text.
ATTENTION_TOLERANCE = 2e-3


def test_the_small_demo_writes_the_recorded_table(demo_run):
    exp_dir, _ = demo_run
    assert (exp_dir / "table.md").read_text() == (GOLDEN / "small" / "table.md").read_text()


def test_the_small_demo_writes_the_recorded_attention_figures(demo_run):
    exp_dir, _ = demo_run
    written = pd.read_csv(exp_dir / "attention_correlation.csv")
    recorded = pd.read_csv(GOLDEN / "small" / "attention_correlation.csv")
    assert list(written.columns) == list(recorded.columns)
    assert written["weights"].tolist() == recorded["weights"].tolist()
    numbers = [c for c in recorded.columns if c != "weights"]
    difference = (written[numbers] - recorded[numbers]).abs()
    assert (difference <= ATTENTION_TOLERANCE).all().all(), f"largest differences:\n{difference.max()}"


def earlier_project(folder: Path, demo_run) -> Path:
    """A project holding the small demo as the earlier run left it: its data set (the same files), its
    stage records, and frame shards of the recorded shapes (what is in them is not looked at)."""
    project = new_project(folder)
    shutil.copytree(demo_run[0].parent.parent / "data", project / "data")
    shutil.copytree(EARLIER, project / "results" / "small")
    for manifest in (project / "results" / "small" / "frames").glob("*/manifest.json"):
        params = read_json(manifest)["params"]
        for shard in read_json(manifest)["shards"]:
            size = params["image_size"]
            NpyRows.create(manifest.parent / shard["frames"], (shard["count"], params["max_frames"], 3, size, size),
                           "uint8")
            NpyRows.create(manifest.parent / shard["mask"], (shard["count"], params["max_frames"]), "int64")
    return project


def in_project(project: Path, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("TCLIB_ROOT", str(project))
    return load_params("params/demo.yaml", small_demo())


def relative(folders: dict, exp_dir: Path) -> dict:
    return {key: folder and str(folder.relative_to(exp_dir)) for key, folder in folders.items()}


def earlier_folders() -> set[str]:
    folders = {str(p.parent.relative_to(EARLIER)) for p in EARLIER.rglob("stage.json")}
    folders |= {str(p.parent.relative_to(EARLIER)) for p in EARLIER.glob("frames/*/manifest.json")}
    return folders | {str(p.parent.relative_to(EARLIER)) for p in EARLIER.glob("teachers/*/*/features/*/manifest.json")}


def adoptions(report, exp_dir: Path) -> dict[str, str]:
    return {a.key: str(a.earlier.relative_to(exp_dir)) for a in report.adopted}


def test_a_project_made_before_and_copied_elsewhere_is_adopted_by_migrate_stage_by_stage(demo_run, tmp_path,
                                                                                          monkeypatch):
    project = earlier_project(tmp_path / "copied", demo_run)
    P = in_project(project, monkeypatch)
    exp_dir = P.exp_dir

    # a dry run: every earlier folder found where it lies, nothing renamed
    where = adoptions(migrate([small_params(project)], dry_run=True), exp_dir)
    assert set(where.values()) == earlier_folders()
    assert {str(p.relative_to(exp_dir)) for p in stage_folders(exp_dir)} == earlier_folders()

    # the migration: each earlier folder adopted under its new fingerprint
    report = migrate([small_params(project)])
    assert not report.problems and adoptions(report, exp_dir) == where
    data = prepare_data(P)  # a rerun finds every stage done
    found = relative(found_stages(P, data), exp_dir)
    assert found == relative(stage_plan(P, data), exp_dir) and set(found.values()) == {found[k] for k in where}
    for key, folder in found.items():  # a folder whose fingerprint read no path keeps its name
        if key in where and not key.startswith("teacher-features"):
            record = read_record(exp_dir / folder)
            assert record["format"] == 2
            assert record["info"].get("adopted_from") == (None if folder == where[key] else Path(where[key]).name)
    assert found["backbone"] == where["backbone"] and found["frames"] != where["frames"]
    # and the folders are those the same demo made from scratch, by this code, in another folder
    _, made_here = demo_run
    assert found == relative(stage_plan(made_here, prepare_data(made_here)), made_here.exp_dir)
    assert {str(p.relative_to(exp_dir)) for p in stage_folders(exp_dir)} == set(found.values())  # no other
    assert not any(made_by_earlier_rule(p) for p in stage_folders(exp_dir))
    assert migrate([small_params(project)]).adopted == []  # a second migration: nothing left to adopt


def test_an_adopted_project_copied_again_reruns_nothing(demo_run, tmp_path, monkeypatch):
    project = earlier_project(tmp_path / "first", demo_run)
    P = in_project(project, monkeypatch)
    migrate([small_params(project)])
    adopted = relative(found_stages(P, prepare_data(P)), P.exp_dir)
    shutil.copytree(tmp_path / "first", tmp_path / "second")  # as `cp -r`: new modification times
    os.utime(tmp_path / "second" / "data" / "videos" / "video0.mp4", (0, 0))
    P = in_project(tmp_path / "second", monkeypatch)
    data = prepare_data(P)
    assert relative(found_stages(P, data), P.exp_dir) == adopted
    assert relative(stage_plan(P, data), P.exp_dir) == adopted


def test_clean_removes_none_of_the_folders_made_before_migrated_or_not(demo_run, tmp_path, monkeypatch, capsys):
    from tclib.clean import clean
    from tclib.cli import main

    project = earlier_project(tmp_path / "copied", demo_run)
    P = in_project(project, monkeypatch)
    params = small_params(project)
    before = {str(p.relative_to(P.exp_dir)) for p in stage_folders(P.exp_dir)}
    assert before == earlier_folders()
    assert clean([params]).removed == []  # not migrated: its frame cache is not found, the experiment is left alone
    assert {str(p.relative_to(P.exp_dir)) for p in stage_folders(P.exp_dir)} == before
    assert main(["migrate", str(params)]) == 0  # the command
    assert capsys.readouterr().out.splitlines()[-1] == f"adopted {len(before)} stage folder(s)"
    report = clean([params])
    assert report.removed == [] and len(report.kept) == len(before)  # adopted, every one kept
