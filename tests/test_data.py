"""Tests of tclib.data: frame sampling, decoding, MSR-VTT reader, synthetic set, frame cache."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tclib.data.cache as cache_mod
from tclib.data import (
    CLIP_MEAN,
    CLIP_STD,
    FrameCache,
    PairDataset,
    build_frame_cache,
    check_videos,
    normalize_frames,
    pad_frames,
    read_msrvtt,
    read_video_frames,
    relevance_table,
    render_image_caption_pairs,
    resize_center_crop,
    sample_frame_indices,
    write_synthetic_msrvtt,
)
from tclib.data.synthetic import BACKGROUNDS, COLORS, Concept, caption_for
from tclib.errors import DataError

N_TRAIN, N_TEST, SIZE = 6, 3, 32


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> Path:
    """Encode RGB frames (n, H, W, 3) as an H.264 mp4."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def flat_colors(n: int) -> np.ndarray:
    """n clearly distinct RGB colors."""
    i = np.arange(n)
    return np.stack([(i * 40) % 256, (i * 97 + 60) % 256, 255 - (i * 9) % 256], axis=1).astype(np.uint8)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    return write_synthetic_msrvtt(root, n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=3)


@pytest.fixture(scope="module")
def color_video(tmp_path_factory) -> tuple[Path, np.ndarray]:
    colors = flat_colors(25)
    frames = np.broadcast_to(colors[:, None, None, :], (25, 32, 64, 3)).copy()
    path = write_mp4(tmp_path_factory.mktemp("color") / "colors.mp4", frames, fps=5)
    return path, colors


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "frame_count, fps, framerate, expected",
    [
        (100, 30, 1, [0, 30, 60, 90]),  # 4 s rounded up, second 4 (frame 120) is past the end
        (100, 29.97, 1, [0, 29, 58, 87]),  # fps truncates to 29
        (25, 2, 1, list(range(0, 25, 2))),  # 13 seconds, frames 0, 2, ..., 24
        (25, 2, 2, list(range(25))),  # every frame
        (25, 2, 5, list(range(25))),  # more per second than the video has: every frame
        (100, 30, 0, list(range(100))),  # framerate 0: every frame
        (100, 30, 3, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]),
        (30, 30, 1, [0]),
    ],
)
def test_sample_frame_indices(frame_count, fps, framerate, expected):
    out = sample_frame_indices(frame_count, fps, max_frames=1000, framerate=framerate)
    assert out.dtype == np.int64
    assert out.tolist() == expected


@pytest.mark.parametrize(
    "slice_framepos, max_frames, expected",
    [
        (0, 5, [0, 2, 4, 6, 8]),
        (1, 5, [16, 18, 20, 22, 24]),
        (2, 5, [0, 6, 12, 18, 24]),
        (2, 6, [0, 4, 8, 14, 18, 24]),  # linspace [0, 2.4, 4.8, 7.2, 9.6, 12] truncated
        (2, 13, list(range(0, 25, 2))),  # max_frames == sampled: untouched
    ],
)
def test_sample_frame_indices_slicing(slice_framepos, max_frames, expected):
    out = sample_frame_indices(25, 2, max_frames=max_frames, slice_framepos=slice_framepos)
    assert out.tolist() == expected


def test_sample_frame_indices_segment():
    assert sample_frame_indices(300, 30, 100, start_time=2, end_time=5).tolist() == [60, 90, 120, 150]
    # end past the video: clipped to the duration (10 s), then the end-of-video stop
    assert sample_frame_indices(300, 30, 100, start_time=8, end_time=20).tolist() == [240, 270]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(frame_count=100, fps=0),
        dict(frame_count=100, fps=0.9),
        dict(frame_count=0, fps=30),
        dict(frame_count=100, fps=30, start_time=5, end_time=5),
        dict(frame_count=100, fps=30, start_time=-1, end_time=2),
        dict(frame_count=100, fps=30, start_time=1.5, end_time=3),
        dict(frame_count=100, fps=30, start_time=1),
    ],
)
def test_sample_frame_indices_errors(kwargs):
    with pytest.raises(DataError, match="clip.mp4"):
        sample_frame_indices(max_frames=12, video="clip.mp4", **kwargs)


# ----------------------------------------------------------------------------- decoding


def test_read_video_frames_sampled_colors(color_video):
    path, colors = color_video
    # 25 frames at 5 fps: seconds 0..5 -> frames 0, 5, 10, 15, 20; max_frames 3 -> 0, 10, 20
    out = read_video_frames(path, max_frames=3, image_size=16)
    assert out.shape == (3, 3, 16, 16) and out.dtype == np.uint8
    means = out.reshape(3, 3, -1).mean(axis=2)
    for got, idx in zip(means, [0, 10, 20]):
        dist = np.abs(colors.astype(float) - got).max(axis=1)
        assert dist.argmin() == idx
        assert dist[idx] < 6


def test_sampled_frame_seconds(color_video):
    from tclib.data.frames import sampled_frame_seconds

    path, _ = color_video
    # the frames of the test above, 0, 10 and 20 at 5 fps, and every second's frame without a cap
    assert sampled_frame_seconds(path, max_frames=3).tolist() == [0.0, 2.0, 4.0]
    assert sampled_frame_seconds(path, max_frames=30).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_read_video_frames_all_frames(color_video):
    path, colors = color_video
    out = read_video_frames(path, max_frames=30, image_size=8, framerate=0)
    assert out.shape == (25, 3, 8, 8)
    means = out.reshape(25, 3, -1).mean(axis=2)
    np.testing.assert_allclose(means, colors, atol=6)


def test_read_video_frames_decord_width_bug(tmp_path):
    # decord's get_batch fails on some widths (48 here); the PyAV fallback must give the same frames
    colors = flat_colors(6)
    frames = np.broadcast_to(colors[:, None, None, :], (6, 32, 48, 3)).copy()
    frames[:, :, :8] = 0  # a black band on the left, to check the column order
    path = write_mp4(tmp_path / "w48.mp4", frames, fps=2)
    out = read_video_frames(path, max_frames=3, image_size=32)
    assert out.shape == (3, 3, 32, 32)
    expected = np.stack([resize_center_crop(frames[i], 32) for i in (0, 2, 4)])
    assert np.abs(out.astype(int) - expected).max() < 8


@pytest.mark.parametrize("hw", [(30, 70), (70, 30), (33, 33), (16, 40)])
def test_resize_center_crop_matches_torchvision(hw):
    from PIL import Image
    from torchvision import transforms

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    ref = transforms.Compose(
        [transforms.Resize(16, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(16)]
    )(Image.fromarray(img))
    np.testing.assert_array_equal(resize_center_crop(img, 16), np.asarray(ref).transpose(2, 0, 1))


def test_read_video_frames_non_square(tmp_path):
    # 64 wide, 32 high: red | green (the middle half) | blue. Short side 32 -> 16 gives 32 x 16,
    # and the center crop keeps exactly the green middle half.
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, :16] = (255, 0, 0)
    frame[:, 16:48] = (0, 255, 0)
    frame[:, 48:] = (0, 0, 255)
    path = write_mp4(tmp_path / "wide.mp4", np.stack([frame] * 4), fps=2)
    out = read_video_frames(path, max_frames=4, image_size=16)
    assert out.shape == (2, 3, 16, 16)
    inner = out[:, :, :, 2:14].astype(int)  # away from the bicubic overshoot at the borders
    assert np.abs(inner - np.array([0, 255, 0])[None, :, None, None]).max() < 12

    import decord

    decoded = decord.VideoReader(str(path), num_threads=1)[0].asnumpy()
    np.testing.assert_array_equal(out[0], resize_center_crop(decoded, 16))


def test_normalize_and_pad():
    frames = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize_frames(frames)
    assert out.dtype == torch.float32 and out.shape == frames.shape
    expected = (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(out[1, :, 2, 3], expected)

    raw = np.ones((3, 3, 4, 4), np.uint8)
    padded, mask = pad_frames(raw, 5)
    assert padded.shape == (5, 3, 4, 4) and padded.dtype == np.uint8
    assert mask.dtype == np.int64 and mask.tolist() == [1, 1, 1, 0, 0]
    assert padded[3:].sum() == 0 and (padded[:3] == 1).all()
    with pytest.raises(DataError):
        pad_frames(raw, 2)


def test_read_video_frames_errors(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(DataError, match=f"video file not found: {missing}"):
        read_video_frames(missing, 4, 16)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=str(corrupt)):
        read_video_frames(corrupt, 4, 16)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=str(empty)):
        read_video_frames(empty, 4, 16)


# ----------------------------------------------------------------------------- synthetic + reader


def _json(path: Path):
    return json.loads(path.read_text())


def test_synthetic_round_trip(synth):
    data = _json(synth / "MSRVTT_data.json")
    assert {"videos", "sentences"} <= set(data)
    assert [v["video_id"] for v in data["videos"]] == [f"video{i}" for i in range(N_TRAIN + N_TEST)]
    assert {v["split"] for v in data["videos"][:N_TRAIN]} == {"train"}
    assert {v["split"] for v in data["videos"][N_TRAIN:]} == {"test"}
    for v in data["videos"]:
        assert set(v) == {"video_id", "category", "url", "start time", "end time", "split", "id"}
    sentences = data["sentences"]
    assert len(sentences) == 4 * (N_TRAIN + N_TEST)
    assert [s["sen_id"] for s in sentences] == list(range(len(sentences)))
    for s in sentences:
        assert s["caption"] == s["caption"].lower() and s["caption"].strip()

    train = read_msrvtt(synth, "train")
    assert list(train.columns) == ["video_id", "caption", "split", "video_path"]
    train_sents = [s for s in sentences if int(s["video_id"][5:]) < N_TRAIN]
    assert train["video_id"].tolist() == [s["video_id"] for s in train_sents]
    assert train["caption"].tolist() == [s["caption"] for s in train_sents]
    assert check_videos(train) == []
    assert train["video_path"].iloc[0] == str(synth / "videos" / "video0.mp4")

    per_video = read_msrvtt(synth, "train", expand_sentences=False)
    assert per_video["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN)]
    firsts = {}
    for s in train_sents:
        firsts.setdefault(s["video_id"], s["caption"])
    assert per_video["caption"].tolist() == [firsts[v] for v in per_video["video_id"]]

    test = read_msrvtt(synth, "test")
    assert test["video_id"].tolist() == [f"video{i}" for i in range(N_TRAIN, N_TRAIN + N_TEST)]
    by_video: dict[str, list[str]] = {}
    for s in sentences:
        by_video.setdefault(s["video_id"], []).append(s["caption"])
    for vid, caption in zip(test["video_id"], test["caption"]):
        assert caption in (by_video[vid][0], by_video[vid][2])  # first caption of a scene
    with open(synth / "MSRVTT_JSFUSION_test.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["key", "vid_key", "video_id", "sentence"]
    assert [r["key"] for r in rows] == [f"ret{i}" for i in range(N_TEST)]
    assert (synth / "MSRVTT_train.9k.csv").read_text().splitlines()[0] == "video_id"
    assert len((synth / "MSRVTT_train.7k.csv").read_text().splitlines()) == 1 + N_TRAIN * 7 // 9


def test_synthetic_relevance_and_content(synth):
    import decord

    rel = relevance_table(synth)
    sentences = _json(synth / "MSRVTT_data.json")["sentences"]
    assert sorted(rel["sen_id"]) == [s["sen_id"] for s in sentences]
    meta = {m["video_id"]: m for m in _json(synth / "video_meta.json")}
    for row in rel.itertuples():
        m = meta[row.video_id]
        assert row.duration == m["duration"] and 10 <= m["duration"] <= 14
        assert 2 <= len(row.relevant_seconds) <= 4
        assert row.relevant_seconds == list(range(row.relevant_seconds[0], row.relevant_seconds[-1] + 1))
        assert {m["seconds"][s] for s in row.relevant_seconds} == {f"scene{row.scene}"}
        concept = m["scenes"][row.scene]["concept"]
        assert concept["color"] in row.caption and concept["shape"] in row.caption
    for vid, m in meta.items():
        assert set(m["seconds"]) <= {"scene0", "scene1", "noise", "blank", "transition", "clutter"}
        vr = decord.VideoReader(str(synth / "videos" / f"{vid}.mp4"), num_threads=1)
        assert len(vr) == m["duration"] * m["fps"] == m["n_frames"]
        # a key-scene frame shows its object's color in the middle and its background at a corner
        sec = m["scenes"][0]["seconds"][0]
        frame = vr[sec * m["fps"]].asnumpy().astype(int)
        concept = m["scenes"][0]["concept"]
        mid = frame[SIZE // 2 - 1 : SIZE // 2 + 1, SIZE // 2 - 1 : SIZE // 2 + 1].reshape(-1, 3).mean(0)
        corner = frame[:3, :3].reshape(-1, 3).mean(0)
        assert np.abs(mid - COLORS[concept["color"]]).max() < 30
        assert np.abs(corner - BACKGROUNDS[concept["background"]]).max() < 30


def test_synthetic_deterministic_and_resume(synth, tmp_path):
    other = write_synthetic_msrvtt(tmp_path / "b", n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=3)
    for name in ("MSRVTT_data.json", "relevance.json", "video_meta.json", "MSRVTT_JSFUSION_test.csv"):
        assert (other / name).read_text() == (synth / name).read_text()
    a = read_video_frames(synth / "videos" / "video2.mp4", 12, 16)
    b = read_video_frames(other / "videos" / "video2.mp4", 12, 16)
    np.testing.assert_array_equal(a, b)

    stamps = {p.name: p.stat().st_mtime_ns for p in (other / "videos").iterdir()}
    (other / "videos" / "video1.mp4").unlink()
    (other / "videos" / "video4.mp4").write_bytes(b"broken")
    write_synthetic_msrvtt(other, n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=3)
    for name, stamp in stamps.items():
        changed = (other / "videos" / name).stat().st_mtime_ns != stamp
        assert changed == (name in ("video1.mp4", "video4.mp4")), name
    assert check_videos(read_msrvtt(other, "train")) == []
    assert not list((other / "videos").glob("*partial*"))

    seed4 = write_synthetic_msrvtt(tmp_path / "c", n_train=2, n_test=0, size=SIZE, seed=4)
    other_seed = _json(seed4 / "MSRVTT_data.json")["sentences"]
    assert other_seed != _json(synth / "MSRVTT_data.json")["sentences"][:8]


def test_render_image_caption_pairs():
    images, captions = render_image_caption_pairs(20, size=32, seed=1)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert len(captions) == 20 and all(c and c == c.lower() for c in captions)
    images2, captions2 = render_image_caption_pairs(20, size=32, seed=1)
    np.testing.assert_array_equal(images, images2)
    assert captions == captions2
    assert caption_for(Concept("orange", "cross", "navy"), 0) == "an orange cross on a navy background"


# ----------------------------------------------------------------------------- reader errors


@pytest.fixture()
def ann(synth, tmp_path) -> Path:
    """A copy of the synthetic annotation files (videos not copied) to break."""
    for name in ("MSRVTT_data.json", "MSRVTT_train.9k.csv", "MSRVTT_JSFUSION_test.csv", "relevance.json"):
        shutil.copy(synth / name, tmp_path / name)
    return tmp_path


def test_reader_missing_files(ann):
    (ann / "MSRVTT_data.json").unlink()
    with pytest.raises(DataError, match=f"not found: {ann / 'MSRVTT_data.json'}"):
        read_msrvtt(ann, "train")
    with pytest.raises(DataError, match="MSRVTT_JSFUSION_test"):
        read_msrvtt(ann, "test", test_csv="MSRVTT_JSFUSION_test.csv.missing")
    with pytest.raises(DataError, match="split"):
        read_msrvtt(ann, "validation")


def test_reader_missing_videos_are_reported(ann):
    df = read_msrvtt(ann, "test")
    assert df["video_path"].iloc[0] == str(ann / "video6.mp4")  # no video folder: root itself
    assert check_videos(df) == df["video_path"].tolist()


def test_reader_malformed_json(ann):
    path = ann / "MSRVTT_data.json"
    path.write_text(path.read_text()[:-20])
    with pytest.raises(DataError, match=f"invalid JSON in {path}"):
        read_msrvtt(ann, "train")


def test_reader_missing_sentences(ann):
    path = ann / "MSRVTT_data.json"
    data = _json(path)
    del data["sentences"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="MSRVTT_data.json has no 'sentences'"):
        read_msrvtt(ann, "train")


def test_reader_missing_column(ann):
    path = ann / "MSRVTT_JSFUSION_test.csv"
    text = path.read_text().replace("sentence", "text", 1)
    path.write_text(text)
    with pytest.raises(DataError, match=f"{path} has no column 'sentence'"):
        read_msrvtt(ann, "test")
    path = ann / "MSRVTT_train.9k.csv"
    path.write_text("vid\nvideo0\n")
    with pytest.raises(DataError, match=f"{path} has no column 'video_id'"):
        read_msrvtt(ann, "train")


def test_reader_empty_caption(ann):
    path = ann / "MSRVTT_data.json"
    data = _json(path)
    data["sentences"][5]["caption"] = "   "
    path.write_text(json.dumps(data))
    vid = data["sentences"][5]["video_id"]
    with pytest.raises(DataError, match=f"empty caption for {vid} \\(sen_id 5\\) in {path}"):
        read_msrvtt(ann, "train")

    csv_path = ann / "MSRVTT_JSFUSION_test.csv"
    lines = csv_path.read_text().splitlines()
    key, vid_key, vid, _ = lines[2].split(",", 3)
    lines[2] = f"{key},{vid_key},{vid},"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"empty caption for {vid} in {csv_path}"):
        read_msrvtt(ann, "test")


def test_reader_train_video_without_sentence(ann):
    path = ann / "MSRVTT_train.9k.csv"
    path.write_text(path.read_text() + "video999\n")
    with pytest.raises(DataError, match="video999"):
        read_msrvtt(ann, "train")


def test_relevance_table_errors(ann):
    (ann / "relevance.json").write_text(json.dumps([{"video_id": "video0"}]))
    with pytest.raises(DataError, match="has no 'caption'"):
        relevance_table(ann)


# ----------------------------------------------------------------------------- frame cache

PARAMS = dict(max_frames=6, image_size=16, framerate=1, slice_framepos=2)


def _videos(root: Path, n: int) -> dict[str, str]:
    return {f"video{i}": str(root / "videos" / f"video{i}.mp4") for i in range(n)}


def test_cache_build_and_read(synth, tmp_path):
    videos = _videos(synth, 4)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 1000)
    videos["broken"] = str(corrupt)
    videos["missing"] = str(tmp_path / "missing.mp4")
    cache = build_frame_cache(videos, tmp_path / "cache", **PARAMS)

    assert len(cache) == 6 and cache.video_ids == list(videos)
    assert cache.frames.shape == (6, 6, 3, 16, 16) and cache.frames.dtype == np.uint8
    assert cache.mask.shape == (6, 6) and cache.mask.dtype == np.int64
    for vid in ("video0", "video3"):
        frames, mask = cache.get(vid)
        ref, ref_mask = pad_frames(read_video_frames(videos[vid], 6, 16), 6)
        np.testing.assert_array_equal(frames, ref)
        np.testing.assert_array_equal(mask, ref_mask)
    assert cache.index_of("video2") == 2
    with pytest.raises(DataError, match="broken"):
        cache.index_of("broken")
    with pytest.raises(DataError, match="video77"):
        cache.index_of("video77")
    assert cache.mask[4].sum() == 0
    with open(tmp_path / "cache" / "failures.csv") as f:
        failures = list(csv.DictReader(f))
    assert [r["video"] for r in failures] == ["broken", "missing"]
    assert str(corrupt) in failures[0]["reason"]
    manifest = _json(tmp_path / "cache" / "manifest.json")
    assert manifest["params"] == {**PARAMS, "storage": "raw"} and manifest["n_videos"] == 6 and manifest["complete"]
    assert _json(tmp_path / "cache" / "index.json") == list(videos)

    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.get("video1")[0], cache.get("video1")[0])

    # resume: nothing left to decode (the failures did not change on disk)
    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again")

    mp = pytest.MonkeyPatch()
    mp.setattr(cache_mod, "read_video_frames", no_decode)
    try:
        again = build_frame_cache(videos, tmp_path / "cache", **PARAMS)
    finally:
        mp.undo()
    np.testing.assert_array_equal(again.frames, cache.frames)

    # a failed video whose file appears is retried
    shutil.copy(videos["video0"], tmp_path / "missing.mp4")
    fixed = build_frame_cache(videos, tmp_path / "cache", **PARAMS)
    np.testing.assert_array_equal(fixed.get("missing")[0], cache.get("video0")[0])
    assert list(fixed.failed) == ["broken"]


def test_cache_param_mismatch(synth, tmp_path):
    videos = _videos(synth, 2)
    build_frame_cache(videos, tmp_path / "cache", **PARAMS)
    with pytest.raises(DataError, match="max_frames=6.*max_frames=8"):
        build_frame_cache(videos, tmp_path / "cache", **{**PARAMS, "max_frames": 8})
    with pytest.raises(DataError, match="slice_framepos"):
        build_frame_cache(videos, tmp_path / "cache", **{**PARAMS, "slice_framepos": 0})
    with pytest.raises(DataError, match="another list of videos"):
        build_frame_cache(_videos(synth, 3), tmp_path / "cache", **PARAMS)
    with pytest.raises(DataError, match="image_size"):
        FrameCache(tmp_path / "cache", expect={**PARAMS, "image_size": 32})
    assert len(FrameCache(tmp_path / "cache", expect=PARAMS)) == 2
    with pytest.raises(DataError, match="manifest.json"):
        FrameCache(tmp_path / "nowhere")


def test_jpeg_cache_reads_back_the_raw_frames_within_jpeg_error(synth, tmp_path):
    videos = _videos(synth, 4)
    videos["missing"] = str(tmp_path / "missing.mp4")
    raw = build_frame_cache(videos, tmp_path / "raw", shard_size=3, **PARAMS)
    jpeg = build_frame_cache(videos, tmp_path / "jpeg", shard_size=3, storage="jpeg", jpeg_quality=95, **PARAMS)
    files = sorted(p.name for p in (tmp_path / "jpeg").iterdir())
    assert [f for f in files if f.startswith("frames")] == ["frames-00000.index.npy", "frames-00000.jpeg",
                                                            "frames-00001.index.npy", "frames-00001.jpeg"]
    assert _json(tmp_path / "jpeg" / "manifest.json")["params"] == {**PARAMS, "storage": "jpeg", "jpeg_quality": 95}
    np.testing.assert_array_equal(jpeg.mask, raw.mask)
    rows = np.array([4, 0, 3, 1, 2])  # across both shards, out of order, the failed video included
    a, b = raw.frames_of(rows).astype(int), jpeg.frames_of(rows).astype(int)
    real = raw.mask_of(rows).astype(bool)
    assert (b[~real] == 0).all()  # padding and the failed video: exact zeros, stored as nothing
    # lossy but close: 16-px frames of hard-edged shapes are JPEG's worst case (2.1 grey levels here)
    assert np.abs(a - b)[real].mean() < 3.0 and np.abs(a - b).max() < 64
    # only real frames take bytes: one JPEG each, side by side (sizes pay off at 224 px: benchmarks/frames.py)
    lengths = np.concatenate([np.load(tmp_path / "jpeg" / f"frames-0000{k}.index.npy")[..., 1] for k in (0, 1)])
    assert ((lengths > 0) == raw.mask[:].astype(bool)).all()
    assert lengths.sum() == sum((tmp_path / "jpeg" / f).stat().st_size for f in files if f.endswith(".jpeg"))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(jpeg)).get("video1")[0], jpeg.get("video1")[0])

    mp = pytest.MonkeyPatch()
    mp.setattr(cache_mod, "read_video_frames", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    try:  # resumed: nothing decoded again, and the same frames
        again = build_frame_cache(videos, tmp_path / "jpeg", storage="jpeg", jpeg_quality=95, **PARAMS)
    finally:
        mp.undo()
    np.testing.assert_array_equal(again.frames, jpeg.frames)
    with pytest.raises(DataError, match="storage='jpeg'.*storage='raw'"):
        build_frame_cache(videos, tmp_path / "jpeg", **PARAMS)
    with pytest.raises(DataError, match="jpeg_quality=95.*jpeg_quality=90"):
        build_frame_cache(videos, tmp_path / "jpeg", storage="jpeg", jpeg_quality=90, **PARAMS)
    with pytest.raises(DataError, match="storage must be one of raw, jpeg"):
        build_frame_cache(videos, tmp_path / "png", storage="png", **PARAMS)


def test_an_interrupted_jpeg_build_resumes_without_losing_finished_videos(synth, tmp_path, monkeypatch):
    videos = _videos(synth, 4)
    decode = cache_mod.read_video_frames
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return decode(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "read_video_frames", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_frame_cache(videos, tmp_path / "jpeg", storage="jpeg", **PARAMS)
    manifest = _json(tmp_path / "jpeg" / "manifest.json")
    assert manifest["done"] == [1, 1, 0, 0]
    calls.clear()
    monkeypatch.setattr(cache_mod, "read_video_frames", decode)
    resumed = build_frame_cache(videos, tmp_path / "jpeg", storage="jpeg", **PARAMS)
    fresh = build_frame_cache(videos, tmp_path / "fresh", storage="jpeg", **PARAMS)
    np.testing.assert_array_equal(resumed.frames, fresh.frames)  # JPEG encoding is deterministic


def test_cache_workers(synth, tmp_path):
    videos = _videos(synth, 3)
    serial = build_frame_cache(videos, tmp_path / "serial", **PARAMS)
    pooled = build_frame_cache(videos, tmp_path / "pooled", workers=2, **PARAMS)
    np.testing.assert_array_equal(serial.frames, pooled.frames)
    np.testing.assert_array_equal(serial.mask, pooled.mask)


# ----------------------------------------------------------------------------- dataset


def test_pair_dataset(synth, tmp_path):
    cache = build_frame_cache(_videos(synth, 3), tmp_path / "cache", **PARAMS)
    df = read_msrvtt(synth, "train")
    df = df[df["video_id"].isin(cache.video_ids)]
    seen: list[list[str]] = []

    def tokenize(texts: list[str]) -> torch.Tensor:
        seen.append(texts)
        return torch.tensor([[len(t), 7, 0] for t in texts])

    ds = PairDataset(df["caption"].tolist(), df["video_id"].tolist(), cache, tokenize)
    assert len(seen) == 1 and len(ds) == len(df) == 12
    item = ds[5]
    assert item["tokens"].dtype == torch.long
    assert item["tokens"].tolist() == [len(df["caption"].iloc[5]), 7, 0]
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (6, 3, 16, 16)
    assert item["frame_mask"].dtype == torch.long and item["frame_mask"].shape == (6,)
    assert item["caption_index"] == 5 and item["video_index"] == cache.index_of(df["video_id"].iloc[5])
    torch.testing.assert_close(item["frames"], torch.from_numpy(cache.frames[item["video_index"]].copy()))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["frames"].shape == (4, 6, 3, 16, 16)

    with pytest.raises(DataError, match="empty caption for video1"):
        PairDataset(["a red circle", " "], ["video0", "video1"], cache, tokenize)
    with pytest.raises(DataError, match="video9"):
        PairDataset(["a red circle"], ["video9"], cache, tokenize)


def test_batch_reads_give_the_batches_of_item_reads(synth, tmp_path):
    from tclib.train import TrainConfig, training_loader

    cache = build_frame_cache(_videos(synth, 4), tmp_path / "cache", shard_size=2, **PARAMS)  # rows over shards
    df = read_msrvtt(synth, "train")
    df = df[df["video_id"].isin(cache.video_ids)]
    ds = PairDataset(df["caption"].tolist(), df["video_id"].tolist(), cache,
                     lambda texts: torch.tensor([[len(t), 7] for t in texts]))
    assert ds.reads_batches and len(ds) == 16
    config = TrainConfig(epochs=1, batch_size=5, lr=1e-3, seed=0)
    batched = training_loader(ds, config, torch.Generator().manual_seed(3), torch.device("cpu"))
    items = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True, drop_last=True,
                                        generator=torch.Generator().manual_seed(3))
    # a source read item by item (decoding on the fly) goes through the same sampler
    decoded = PairDataset(df["caption"].tolist(), df["video_id"].tolist(),
                          cache_mod.DecodedFrames(_videos(synth, 4), **PARAMS),
                          lambda texts: torch.tensor([[len(t), 7] for t in texts]))
    assert not decoded.reads_batches
    one_by_one = training_loader(decoded, config, torch.Generator().manual_seed(3), torch.device("cpu"))
    for epoch in range(2):  # the generator advances the same way over epochs
        a, b, c = list(batched), list(items), list(one_by_one)
        assert len(a) == len(b) == len(c) == 3  # 16 items, batches of 5, the last partial one dropped
        for x, y, z in zip(a, b, c):
            assert x.keys() == y.keys() == z.keys()
            for key in x:
                torch.testing.assert_close(x[key], torch.as_tensor(y[key]), rtol=0, atol=0)
                torch.testing.assert_close(torch.as_tensor(z[key]), torch.as_tensor(y[key]), rtol=0, atol=0)
    # one batch read in the batch's order: rows out of order, repeated rows
    batch = ds.batch([15, 0, 4, 5, 0])
    for i, item in zip([15, 0, 4, 5, 0], batch["frames"]):
        torch.testing.assert_close(item, ds[i]["frames"], rtol=0, atol=0)


def _encode_and_decode_hash(path):
    import hashlib

    import decord

    from tclib.data.synthetic import _encode_mp4, _plan_video, _render_video

    plan = _plan_video(12, "train", 64, 2, 2, 0)
    frames = _render_video(plan, 0)
    _encode_mp4(frames, path, 2)
    decoded = decord.VideoReader(str(path), num_threads=1).get_batch(list(range(len(frames)))).asnumpy()
    return hashlib.md5(decoded.tobytes()).hexdigest()


def test_synthetic_videos_decode_identically_across_processes(tmp_path):
    # lossy x264 encoding gave slightly different frames from process to process; lossless must not
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:
        hashes = pool.map(_encode_and_decode_hash, [tmp_path / f"v{i}.mp4" for i in range(6)])
    assert len(set(hashes)) == 1
