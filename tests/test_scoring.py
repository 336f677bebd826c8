"""Teacher scoring: the float16 feature cache (read a batch of rows at a time) gives the numbers of
running the teacher on the batch, refuses a cache made for another run, and the cached and online
scorers give the same losses."""

import numpy as np
import pytest
import torch

from tclib.data.npyrows import NpyRows
from tclib.errors import CheckpointError
from tclib.models import TEACHERS, CLIP4Clip, Tokenizer, build_teacher, load_clip
from tclib.scoring import CachedTeacherScores, OnlineTeacherScores, read_teacher_features, write_teacher_features
from tclib.teaching import TeachingObjective

CAPTIONS = ["a red circle", "a blue square", "a white cross", "a green star", "a black ring"]
MANIFEST = {"teacher": "xclip", "checkpoint_sha256": "abc", "clip_model": "tclib-tiny", "split": "train"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 3, 3, 32, 32), dtype=np.uint8)
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
    return Tokenizer(32)(CAPTIONS), frames, mask


def teacher_named(name):
    torch.manual_seed(0)
    return build_teacher(name, load_clip("tclib-tiny"), max_words=32, max_frames=3, temporal_layers=1).eval()


def test_cached_scores_equal_direct_scores_for_the_encoded_rows(tmp_path, data):
    tokens, frames, mask = data
    teacher = teacher_named("xclip")
    # only frame-source rows 3 and 1 are used by the training split, given out of order
    features = write_teacher_features(tmp_path / "features", teacher, tokens, frames, mask, [3, 1], 2,
                                      torch.device("cpu"), MANIFEST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]  # no partial folder left behind
    assert isinstance(features.video["frames"], NpyRows) and features.video["frames"].dtype == np.float16
    assert features.video["mask"].dtype == mask.dtype and len(features.video["frames"]) == 2
    assert len(features.text["words"]) == len(CAPTIONS)

    scores = CachedTeacherScores([teacher], [read_teacher_features(tmp_path / "features", MANIFEST)])
    batch = {"caption_index": torch.tensor([2, 0]), "video_index": torch.tensor([1, 3])}
    (logits,), (relevance,) = scores(batch)
    with torch.no_grad():
        text = teacher.encode_text(tokens[[2, 0]])
        video = teacher.encode_video(torch.from_numpy(frames[[1, 3]]), torch.from_numpy(mask[[1, 3]]))
        # features are unit vectors: float16 keeps about 3 decimal digits of each coordinate
        assert torch.allclose(logits, teacher.similarity(text, video), atol=5e-3)
        assert torch.allclose(relevance, teacher.relevance(text, video), atol=1e-3)

    for missing in (torch.tensor([0]), torch.tensor([2]), torch.tensor([7])):
        with pytest.raises(ValueError, match="not cached"):
            scores({"caption_index": torch.tensor([0]), "video_index": missing})


def test_a_cache_made_for_another_run_is_refused(tmp_path, data):
    tokens, frames, mask = data
    write_teacher_features(tmp_path / "features", teacher_named("xclip"), tokens, frames, mask, [0, 1], 4,
                           torch.device("cpu"), MANIFEST)
    with pytest.raises(CheckpointError, match=r"features: the teacher feature cache was made for checkpoint_sha256 = "
                                              r"'abc', this run has 'def'"):
        read_teacher_features(tmp_path / "features", {**MANIFEST, "checkpoint_sha256": "def"})
    with pytest.raises(CheckpointError, match="not a teacher feature cache"):
        read_teacher_features(tmp_path)


def cached_teacher(tmp_path, data, name: str, batch_size: int):
    """A teacher, its feature cache of the 4 videos (written `batch_size` at a time), and a batch of the first
    4 captions with their videos out of order."""
    tokens, frames, mask = data
    teacher = teacher_named(name)
    features = write_teacher_features(tmp_path / name, teacher, tokens, frames, mask, [0, 1, 2, 3], batch_size,
                                      torch.device("cpu"), {"teacher": name})
    rows = torch.tensor([0, 1, 3, 2])
    batch = {"tokens": tokens[:4], "frames": torch.from_numpy(frames[rows.numpy()]),
             "frame_mask": torch.from_numpy(mask[rows.numpy()]), "caption_index": torch.arange(4), "video_index": rows}
    return teacher, features, batch


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_cached_and_online_teaching_give_the_same_losses(tmp_path, data, name):
    teacher, features, batch = cached_teacher(tmp_path, data, name, batch_size=3)
    torch.manual_seed(1)
    student = CLIP4Clip(load_clip("tclib-tiny"), temporal="seqTransf", afa=True, temporal_layers=1).eval()
    online = TeachingObjective(OnlineTeacherScores([teacher]))(student, batch)
    cached = TeachingObjective(CachedTeacherScores([teacher], [features]))(student, batch)
    assert online[0].item() == pytest.approx(cached[0].item(), abs=2e-3)
    for part in ("contrastive", "coarse", "fine"):
        assert online[1][part].item() == pytest.approx(cached[1][part].item(), abs=2e-3), part


def test_writing_a_cache_never_removes_what_is_at_its_place(tmp_path, data):
    tokens, frames, mask = data
    teacher = teacher_named("xclip")
    in_the_way = tmp_path / "features"
    in_the_way.mkdir()
    (in_the_way / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match=r"features is in the way of a teacher feature cache"):
        write_teacher_features(in_the_way, teacher, tokens, frames, mask, [0, 1], 2, torch.device("cpu"), MANIFEST)
    assert (in_the_way / "notes.txt").read_text() == "mine"
    # a finished cache already there is kept as it is, and no temporary folder is left behind
    done = tmp_path / "done"
    write_teacher_features(done, teacher, tokens, frames, mask, [0, 1], 2, torch.device("cpu"), MANIFEST)
    stamp = (done / "manifest.json").stat().st_mtime_ns
    write_teacher_features(done, teacher, tokens, frames, mask, [0, 1], 2, torch.device("cpu"), MANIFEST)
    assert (done / "manifest.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done", "features"]


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_teachers_score_in_float32_inside_a_bf16_step(tmp_path, data, name):
    teacher, features, batch = cached_teacher(tmp_path, data, name, batch_size=4)
    cached = CachedTeacherScores([teacher], [features])
    in_the_loader = {**batch, **cached.rows(batch)}  # the rows as the training loader reads them
    for scores, given in ((cached, batch), (cached, in_the_loader), (OnlineTeacherScores([teacher]), batch)):
        (fp32_logits,), (fp32_relevance,) = scores(given)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            (logits,), (relevance,) = scores(given)
        assert logits.dtype == relevance.dtype == torch.float32
        torch.testing.assert_close(logits, fp32_logits, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(relevance, fp32_relevance, rtol=1e-6, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what scoring inside the student's autocast would give
        bf16_logits = teacher.similarity(*(
            {k: v.float() for k, v in cached.rows(batch)["teacher_rows"][0][side].items()} for side in ("text", "video")))
    assert not torch.allclose(bf16_logits.float(), fp32_logits, rtol=1e-4, atol=1e-4)


def test_teachers_score_without_tf32_inside_a_tf32_step(tmp_path, data):
    from tclib.precision import matmul_precision

    tokens, frames, mask = data
    teacher = teacher_named("xclip")
    features = write_teacher_features(tmp_path / "xclip", teacher, tokens, frames, mask, [0, 1, 2, 3], 4,
                                      torch.device("cpu"), {"teacher": "xclip"})
    seen = []
    similarity = teacher.similarity
    teacher.similarity = lambda *a: seen.append(torch.get_float32_matmul_precision()) or similarity(*a)
    with matmul_precision(True):  # what the loop sets for a training run with tf32
        CachedTeacherScores([teacher], [features])({"caption_index": torch.arange(2), "video_index": torch.arange(2)})
        assert torch.get_float32_matmul_precision() == "high"
    assert seen == ["highest"] and torch.get_float32_matmul_precision() == "highest"
