"""The teacher and student stages (tclib.experiment.teachers, .students) on the small demo: a rerun trains
nothing, a given student is evaluated without training, a changed knob trains only what reads it (and
`tclib clean` removes it again), two processes train what one does."""

import json

import torch
from conftest import ROOT

from tclib.experiment import data as experiment_data
from tclib.experiment import students, teachers
from tclib.experiment.data import prepare_data
from tclib.experiment.plan import stage_plan
from tclib.experiment.students import (
    launch_student_training,
    load_student,
    new_student,
    student_seeds,
    student_stage,
    train_student,
    train_students,
)
from tclib.experiment.teachers import prepare_teachers, prepared_teachers
from tclib.params import load_params


def test_rerun_skips_finished_stages(demo_run, monkeypatch):
    _, params = demo_run

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for stage in (teachers, students):
        monkeypatch.setattr(stage, "train", no_training)
    data = prepare_data(params)
    train_students(params, data, prepare_teachers(params, data))

def test_a_student_saved_by_the_reference_code_is_evaluated_without_training(demo_run, tmp_path, monkeypatch):
    """student_checkpoints: a file in the reference's key layout (here: a trained student's weights
    renamed as TeachCLIP's save_model writes them) is evaluated as it is, and gives the same metrics."""
    from tclib.evaluate import metrics_of, similarity_matrix
    from tclib.train import resolve_device

    _, params = demo_run
    run = "teachclip:xclip+ts2net"
    reference_names = {"temporal.frame_position_embeddings.": "frame_position_embeddings.",
                       "temporal.transformer.": "transformerClip.", "afa.fc1.": "frameLinear.",
                       "afa.fc2.": "frameLinear2."}
    state = {}
    data = prepare_data(params)
    trained = student_stage(params, data, prepared_teachers(params, data), run, 0).directory / "run" / "model.pt"
    for key, value in torch.load(trained).items():
        prefix = next((p for p in reference_names if key.startswith(p)), "")
        state["module." + (reference_names[prefix] + key[len(prefix):] if prefix else key)] = value
    torch.save(state, tmp_path / "pytorch_model.bin.9")
    given = load_params(ROOT / "params" / "demo.yaml",
                        {**params.to_dict(), "student_checkpoints": {run: str(tmp_path / "pytorch_model.bin.9")}})

    for stage in (teachers, students):
        monkeypatch.setattr(stage, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    data = prepare_data(given)
    train_students(given, data, prepared_teachers(given, data))  # nothing to train: every other run is done, this one is given
    test = experiment_data.test_set(given, data)
    device = resolve_device("cpu")
    assert student_seeds(given, run) == [None]
    ours = metrics_of(*similarity_matrix(load_student(params, data, prepared_teachers(params, data), run, 0),
                                         test, 50, device), test)
    theirs = metrics_of(*similarity_matrix(load_student(given, data, prepared_teachers(given, data), run, None),
                                           test, 50, device), test)
    for key in ours:
        if key != "score_seconds":
            assert theirs[key] == ours[key], key

def test_new_student_epochs_train_only_the_trainable_students_and_clean_removes_them(demo_run, tmp_path,
                                                                                     monkeypatch):
    """A changed `epochs` reruns the students that train (not the teachers, not the frozen meanP
    student) in new folders beside the finished ones; `tclib clean` with the original params file
    removes the new folders again and keeps every folder the original run reads."""
    import yaml

    from tclib.clean import clean

    _, params = demo_run
    trained = []
    for stage in (teachers, students):
        monkeypatch.setattr(stage, "train",
                            lambda model, dataset, objective, config, out_dir, desc: trained.append(desc))
    more_epochs = load_params(ROOT / "params" / "demo.yaml", {**params.to_dict(), "epochs": params.epochs + 1})
    data = prepare_data(more_epochs)
    finished = stage_plan(params, data)
    train_students(more_epochs, data, prepare_teachers(more_epochs, data))
    trainable = ["clip4clip-seqTransf", "teachclip-coarse:xclip", "teachclip:xclip", "teachclip:xclip+ts2net"]
    assert sorted(trained) == sorted(f"{run} seed {seed}" for run in trainable for seed in params.seeds)
    records = {"frames": "manifest.json", "teacher-features": "manifest.json"}  # the others: stage.json

    def intact(plan):
        return all((folder / records.get(key.split("/")[0], "stage.json")).is_file() for key, folder in plan.items())

    assert intact(finished)  # nothing deleted

    original = tmp_path / "small.yaml"
    original.write_text(yaml.safe_dump(params.to_dict()))
    new_folders = set(stage_plan(more_epochs, data).values()) - set(finished.values())
    assert len(new_folders) == len(trained)
    listed = clean([original], dry_run=True)
    assert {folder for folder, _ in listed.removed} == {f.resolve() for f in new_folders}
    assert all(folder.exists() for folder in new_folders)  # a dry run removes nothing
    report = clean([original])
    assert report.freed > 0 and not any(folder.exists() for folder in new_folders)
    assert intact(finished)
    assert clean([original]).removed == []

def test_a_student_trained_over_two_processes_equals_one_trained_in_one(demo_run, tmp_path):
    """gpus: 2 launches torchrun (gloo on CPUs): the same global batches, the gathered negatives and
    averaged gradients give the weights one process gives, up to float rounding."""
    import dataclasses

    from tclib.models.checkpoint import read_checkpoint

    _, params = demo_run
    P = dataclasses.replace(params, gpus=2, epochs=1, batch_size=8, runs=["teachclip:xclip"])
    data = prepare_data(P)
    train_student(P, data, prepared_teachers(P, data), "teachclip:xclip", 0, tmp_path / "one")
    launch_student_training(P, "teachclip:xclip", 0, tmp_path / "two")
    one, two = (read_checkpoint(tmp_path / name / "run" / "model.pt") for name in ("one", "two"))
    assert one.keys() == two.keys()
    for key in one:
        # AFA's last bias shifts every frame's logit alike, so the softmax gives it a zero gradient:
        # what it gets is rounding noise, which Adam scales up to about 1e-5 a step
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-4, msg=key)
    start = new_student(P, data, "teachclip:xclip").state_dict()
    changed = sum(not torch.equal(start[k], one[k]) for k in one)
    assert changed > 10  # the run trained (8 steps of 8 pairs)
    assert json.loads((tmp_path / "two" / "run" / "history.json").read_text())["epoch_loss"]


def test_the_students_receive_the_teachers_as_02_left_them(demo_run, tmp_path, monkeypatch):
    """03 reads 02's result as a value (prepared_teachers): given it, nothing below train_students derives
    a teacher's stage again; a teacher not prepared is an error naming it."""
    import dataclasses

    import pytest

    from tclib.errors import CheckpointError
    from tclib.experiment.teachers import load_teacher
    from tclib.scoring import CachedTeacherScores

    _, params = demo_run
    data = prepare_data(params)
    prepared = prepared_teachers(params, data)
    assert sorted(prepared) == [(name, seed) for name in sorted(params.teachers) for seed in params.seeds]
    assert all(t.finished and (t.features / "manifest.json").is_file() for t in prepared.values())
    derived = []
    monkeypatch.setattr(teachers, "teacher_stage", lambda *args: derived.append(args))
    objectives = []
    monkeypatch.setattr(students, "train", lambda model, dataset, objective, config, out_dir, desc:
                        objectives.append(objective))
    train_students(params, data, prepared)  # every run finished: nothing trained
    train_student(params, data, prepared, "teachclip:xclip+ts2net", 0, tmp_path / "again")
    [objective] = objectives
    assert isinstance(objective.scores, CachedTeacherScores) and len(objective.scores.teachers) == 2
    assert derived == []
    missing = dataclasses.replace(prepared[("xclip", 0)], directory=tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"teacher xclip seed 0 of small is not prepared .*nowhere\): run "
                                         r"02_teacher_scoring first"):
        load_teacher(params, data, missing)
