"""Stage folders keyed by what each stage reads: which stages a change of params reruns, that
nothing finished is deleted, and `tclib clean`."""

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from tclib.experiment.data import Data, Identities, backbone_fingerprint, frames_inputs, train_fingerprint
from tclib.experiment.plan import stage_plan
from tclib.experiment.training import SPEED_ONLY, TrainingInputs
from tclib.params import Params
from tclib.stages import Stage
from tclib.train import TrainConfig

BASE = dict(exp="inv", data_root="data/inv", synthetic=True, clip_model="tclib-tiny", clip_pretrained="",
            pretrain_steps=4, seeds=[0, 1], clip_lr_scale=0.0, teachers=["xclip", "ts2net"],
            runs=["clip4clip-meanP", "clip4clip-seqTransf", "teachclip-coarse:xclip", "teachclip:xclip",
                  "teachclip:xclip+ts2net"])
TRAIN = pd.DataFrame({"clip_id": ["video0", "video0", "video1", "video2"],
                      "caption": ["a red circle", "a circle in red", "a blue square", "a white cross"]})


def plan(changes: dict | None = None, failed: tuple[str, ...] = ("video2",)) -> dict[str, Path]:
    """The stage folders of BASE + `changes`, with the videos in `failed` left out of training,
    made the way prepare_data makes them."""
    P = Params.from_mapping({**BASE, **(changes or {})})
    videos = {v: str(Path(P.data_root) / "videos" / f"{v}.mp4") for v in ["video0", "video1", "video2", "video3"]}
    frames_fp = frames_inputs(P, videos).fingerprint
    train = TRAIN[~TRAIN.clip_id.isin(failed)]
    ids = Identities(frames_fp, train_fingerprint(frames_fp, train), backbone_fingerprint(P))
    return stage_plan(P, Data(train, train, None, "", ids))


def changed(after: dict[str, Path], before: dict[str, Path] | None = None) -> set[str]:
    before = before or plan()
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def stages(*prefixes: str, seeds=(0, 1)) -> set[str]:
    """Stage keys starting with any of `prefixes`, for every seed."""
    every = plan().keys()
    seeded = lambda key: not key[-1].isdigit() or int(key[-1]) in seeds  # noqa: E731 ("frames", "backbone")
    return {k for k in every if any(k.startswith(p) for p in prefixes) and seeded(k)}


TRAINABLE_STUDENTS = ("students/clip4clip-seqTransf/", "students/teachclip")
TEACHCLIP = ("students/teachclip",)
TEACHERS = ("teachers/", "teacher-features/")


CHANGES = [
    # the student's training: the trainable students only (the frozen meanP student has nothing to train)
    ({"epochs": 3}, stages(*TRAINABLE_STUDENTS)),
    ({"lr": 0.01}, stages(*TRAINABLE_STUDENTS)),
    ({"clip_lr_scale": 0.001}, stages("students/", "teachers/", "teacher-features/")),
    # teaching: the TeachCLIP students only, the fine method only those with fine-grained teaching
    ({"coarse_method": "ce"}, stages(*TEACHCLIP)),
    ({"fine_method": "pear"}, stages("students/teachclip:")),
    ({"loss_weights": {"fine": 3.0}}, stages("students/teachclip:")),
    ({"teacher_mode": "online"}, stages(*TEACHCLIP, "teacher-features/")),
    ({"afa_temperature": 0.2}, stages(*TEACHCLIP)),
    ({"afa_lr_scale": 1.0}, stages(*TEACHCLIP)),
    ({"precision": "bf16"}, stages(*TRAINABLE_STUDENTS)),  # students only: teachers train in fp32
    ({"grad_accumulation": 2}, stages(*TRAINABLE_STUDENTS)),
    # teachers, and the students they teach
    ({"teacher_epochs": 2}, stages(*TEACHERS, *TEACHCLIP)),
    ({"teacher_lr": 0.01}, stages(*TEACHERS, *TEACHCLIP)),
    ({"teacher_options": {"ts2net": {"noisy_selection": True}}},
     stages("teachers/ts2net", "teacher-features/ts2net", "students/teachclip:xclip+ts2net")),
    ({"teacher_checkpoints": {"xclip": "released/msrvtt-9k_xclip_model.bin"}},
     stages("teachers/xclip", "teacher-features/xclip", *TEACHCLIP)),
    ({"temporal_layers": 1}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),
    ({"mask_padded_frames": True}, stages(*TEACHERS, *TEACHCLIP)),
    ({"beta": 0.5}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),
    ({"batch_size": 32}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),
    ({"weight_decay": 0.1}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),
    ({"warmup_proportion": 0.2}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),
    ({"grad_clip": 0.5}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),
    # data: frames, and everything trained on them; the backbone reads none of the videos
    ({"max_frames": 8}, stages("frames", *TEACHERS, *TRAINABLE_STUDENTS)),
    ({"framerate": 2}, stages("frames", *TEACHERS, *TRAINABLE_STUDENTS)),
    ({"slice_framepos": 0}, stages("frames", *TEACHERS, *TRAINABLE_STUDENTS)),
    ({"synthetic_train_videos": 8}, stages("frames", *TEACHERS, *TRAINABLE_STUDENTS)),  # other files, same names
    ({"synthetic_test_videos": 8}, stages("frames", *TEACHERS, *TRAINABLE_STUDENTS)),
    ({"synthetic": False}, stages("frames", *TEACHERS, *TRAINABLE_STUDENTS)),
    ({"frame_cache": False}, set()),  # decoding on the fly gives the cached frames (test_pipeline)
    ({"frame_cache_format": "jpeg"}, stages("frames", *TEACHERS, *TRAINABLE_STUDENTS)),  # other pixels
    ({"jpeg_quality": 80}, set()),  # a raw cache has no quality
    # the backbone (pretrained on captions of max_words tokens, from the synthetic seed): every model
    ({"synthetic_seed": 5}, stages("frames", "backbone", *TEACHERS, "students/")),
    ({"synthetic_frame_size": 32}, stages("frames", "backbone", *TEACHERS, "students/")),
    ({"clip_model": "tclib-tiny-224"}, stages("frames", "backbone", *TEACHERS, "students/")),  # other pixels too
    ({"clip_pretrained": "openai"}, stages("backbone", *TEACHERS, "students/")),
    ({"pretrain_steps": 8}, stages("backbone", *TEACHERS, "students/")),
    ({"pretrain_batch_size": 16}, stages("backbone", *TEACHERS, "students/")),
    ({"max_words": 16}, stages("backbone", *TEACHERS, "students/")),
    ({"pretrain_lr": 0.01}, stages("backbone", "students/", *TEACHERS)),
    # what changes how fast or how it is shown, not what is computed: nothing
    ({"device": "cuda", "num_workers": 2, "decode_workers": 1, "eval_batch_size": 7, "plot_videos": 1,
      "dsl": True, "plot_video_ids": ["video1"], "grad_checkpointing": True, "compile": True, "log_every": 1}, set()),
    # TF32 for the runs that may train on a GPU, whatever machine plans them: full fp32 is another run
    ({"tf32": False}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),
    ({"device": "cpu"}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),
    ({"device": "cpu", "tf32": False}, stages(*TEACHERS, *TRAINABLE_STUDENTS)),  # both: the inputs of before
    # a student given as a file is evaluated, not trained
    ({"student_checkpoints": {"teachclip:xclip": "released/pytorch_model.bin.4"}}, stages("students/teachclip:xclip/")),
    ({"gpus": 2}, set()),  # the same global batches and gradients (tests/test_distributed.py)
    ({"data_root": str(Path("data/inv").resolve())}, set()),
    ({"data_root": "data/../data/inv"}, set()),
]
# Params keys the table above leaves out, and why.
NOT_IN_THE_TABLE = {
    "exp": "names the experiment's folder, which holds every stage",
    "results_dir": "names the folder that holds the experiments",
    "dataset": "read through the annotation tables and video files: the videos and pairs the plans are given",
    "videos_dir": "the same", "train_split": "the same", "data_options": "the same",
    "test_split": "read by evaluation only",
    "runs": "names the student stages themselves", "teachers": "names the teacher stages themselves",
    "seeds": "test_another_seed_adds_its_stages_and_keeps_the_others",
}


@pytest.mark.parametrize("change,expected", CHANGES)
def test_a_change_reruns_exactly_the_stages_that_read_it(change, expected):
    assert changed(plan(change)) == expected


def test_every_params_key_is_in_the_table_or_says_why_not():
    in_table = {key for change, _ in CHANGES for key in change}
    assert set(Params.field_names()) - in_table == set(NOT_IN_THE_TABLE)


def test_every_train_config_field_is_a_training_input_or_changes_only_the_speed():
    """A knob of the training loop that is not in the stages' inputs would reuse a stale folder."""
    config = {f.name for f in dataclasses.fields(TrainConfig)}
    assert config - {f.name for f in dataclasses.fields(TrainingInputs)} == {"seed", *SPEED_ONLY}


def test_another_seed_adds_its_stages_and_keeps_the_others():
    new = {k.replace("seed0", "seed2") for k in stages("teachers/", "teacher-features/", "students/", seeds=(0,))}
    assert changed(plan({"seeds": [0, 1, 2]})) == new


def test_a_repaired_video_reruns_everything_trained_on_the_data():
    # video2 failed to decode in the first run, and decodes after it was repaired
    assert changed(plan(failed=())) == stages(*TEACHERS, *TRAINABLE_STUDENTS)


def test_a_loaded_teacher_is_one_model_for_every_seed():
    folders = plan({"teacher_checkpoints": {"xclip": "released/msrvtt-9k_xclip_model.bin"}})
    assert folders["teachers/xclip/seed0"] == folders["teachers/xclip/seed1"]
    assert folders["teachers/ts2net/seed0"] != folders["teachers/ts2net/seed1"]
    assert folders["students/clip4clip-meanP/seed0"] == folders["students/clip4clip-meanP/seed1"]  # frozen


def test_a_stage_of_other_inputs_is_kept_beside_and_found_again(tmp_path):
    first = Stage(tmp_path / "students" / "teachclip", {"epochs": 5})
    assert not first.finished() and not first.directory.exists()  # asking makes nothing
    first.begin()
    (first.directory / "model.pt").write_text("weights")
    first.finish()
    second = Stage(tmp_path / "students" / "teachclip", {"epochs": 3})
    assert not second.finished() and second.directory != first.directory
    assert (first.directory / "model.pt").read_text() == "weights"  # nothing deleted
    assert Stage(tmp_path / "students" / "teachclip", {"epochs": 5}).finished()  # switching back reuses it


def test_a_new_run_names_the_inputs_that_differ_from_the_nearest_finished_one(tmp_path, caplog):
    base = tmp_path / "teachers" / "xclip"
    for inputs in ({"seed": 0, "lr": 1e-4, "epochs": 5}, {"seed": 1, "lr": 1e-4, "epochs": 5}):
        stage = Stage(base, inputs)
        stage.begin()
        stage.finish()
    with caplog.at_level("INFO", logger="tclib.stages"):
        Stage(base, {"seed": 1, "lr": 3e-4, "epochs": 5}).begin()
        Stage(base, {"seed": 2, "lr": 1e-4, "epochs": 5}).begin()
    first, second = caplog.messages
    assert first.endswith(f"the finished run {Stage(base, {'seed': 1, 'lr': 1e-4, 'epochs': 5}).fingerprint} "
                          "(kept) differs in lr")
    assert second.endswith("differs in seed")


# ----------------------------------------------------------------- identities that do not depend on where

def write_videos(root: Path) -> Path:
    for i, v in enumerate(["video0", "video1", "video2", "video3"]):
        (root / "videos").mkdir(parents=True, exist_ok=True)
        (root / "videos" / f"{v}.mp4").write_bytes(bytes([i]) * (1000 + i))
    return root


def names(changes: dict) -> dict[str, str]:
    """The plan's folders relative to the experiment's folder."""
    P = Params.from_mapping({**BASE, **changes})
    return {key: str(folder.relative_to(P.exp_dir)) for key, folder in plan(changes).items()}


def test_a_data_set_moved_or_copied_reruns_nothing_and_a_video_replaced_with_other_content_does(tmp_path):
    import shutil

    (tmp_path / "results" / "inv").mkdir(parents=True)
    first = names({"data_root": str(write_videos(tmp_path / "a")), "results_dir": str(tmp_path / "results")})
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # a copy of the data set, elsewhere, with new times
    shutil.move(tmp_path / "results", tmp_path / "moved")  # and the project's results moved
    assert names({"data_root": str(tmp_path / "b"), "results_dir": str(tmp_path / "moved")}) == first
    (tmp_path / "b" / "videos" / "video1.mp4").write_bytes(b"another video of the same length!"[:1001] * 31)
    after = names({"data_root": str(tmp_path / "b"), "results_dir": str(tmp_path / "moved")})
    assert {key for key in first if first[key] != after[key]} == stages("frames", *TEACHERS, *TRAINABLE_STUDENTS)


def test_a_checkpoint_is_its_content_wherever_it_lies(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "xclip.bin").write_bytes(b"weights" * 100)
    first = names({"teacher_checkpoints": {"xclip": str(tmp_path / "a" / "xclip.bin")}})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "renamed.bin").write_bytes(b"weights" * 100)
    assert names({"teacher_checkpoints": {"xclip": str(tmp_path / "b" / "renamed.bin")}}) == first
    (tmp_path / "b" / "renamed.bin").write_bytes(b"Weights" * 100)
    after = names({"teacher_checkpoints": {"xclip": str(tmp_path / "b" / "renamed.bin")}})
    assert {k for k in first if first[k] != after[k]} == stages("teachers/xclip", "teacher-features/xclip", *TEACHCLIP)


def test_a_file_identity_is_its_path_under_the_data_set_and_a_signature_of_its_content(tmp_path):
    from tclib.files import SIGNATURE_BYTES, content_signature
    from tclib.stages import file_identity

    video = tmp_path / "data" / "videos" / "v.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(bytes(range(256)) * (3 * SIGNATURE_BYTES // 256))
    identity = file_identity(video, tmp_path / "data")
    assert identity["path"] == "videos/v.mp4" and identity["size"] == 3 * SIGNATURE_BYTES
    assert file_identity(tmp_path / "data" / "videos" / ".." / "videos" / "v.mp4", tmp_path / "data") == identity
    assert file_identity(video, tmp_path / "elsewhere")["path"] == str(video)  # outside the data set: absolute
    for where in (0, 3 * SIGNATURE_BYTES - 1):  # the head and the tail are read
        changed = bytearray(video.read_bytes())
        changed[where] ^= 1
        other = tmp_path / f"changed{where}.mp4"
        other.write_bytes(bytes(changed))
        assert content_signature(other) != content_signature(video)
    assert content_signature(tmp_path / "nothing.mp4") == {"missing": True}
