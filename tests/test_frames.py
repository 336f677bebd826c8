"""Tests of tclib.data.frames: the sampling of the reference extractor, decoding, resizing, padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import flat_colors, write_mp4

from tclib.data import (
    CLIP_MEAN,
    CLIP_STD,
    Sampling,
    normalize_frames,
    pad_frames,
    read_padded_frames,
    read_video_frames,
    resize_center_crop,
    sample_frame_indices,
)
from tclib.data.frames import sampled_frame_count, sampled_frame_seconds
from tclib.errors import DataError


@pytest.fixture(scope="module")
def color_video(tmp_path_factory) -> tuple[Path, np.ndarray]:
    colors = flat_colors(25)
    frames = np.broadcast_to(colors[:, None, None, :], (25, 32, 64, 3)).copy()
    path = write_mp4(tmp_path_factory.mktemp("color") / "colors.mp4", frames, fps=5)
    return path, colors


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
    out = sample_frame_indices(frame_count, fps, Sampling(1000, 16, framerate=framerate))
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
    out = sample_frame_indices(25, 2, Sampling(max_frames, 16, slice_framepos=slice_framepos))
    assert out.tolist() == expected


def test_sample_frame_indices_segment():
    assert sample_frame_indices(300, 30, Sampling(100, 16), start_time=2, end_time=5).tolist() == [60, 90, 120, 150]
    # end past the video: clipped to the duration (10 s), then the end-of-video stop
    assert sample_frame_indices(300, 30, Sampling(100, 16), start_time=8, end_time=20).tolist() == [240, 270]


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
        sample_frame_indices(sampling=Sampling(12, 16), video="clip.mp4", **kwargs)


def test_read_video_frames_sampled_colors(color_video):
    path, colors = color_video
    # 25 frames at 5 fps: seconds 0..5 -> frames 0, 5, 10, 15, 20; max_frames 3 -> 0, 10, 20
    out = read_video_frames(path, Sampling(3, 16))
    assert out.shape == (3, 3, 16, 16) and out.dtype == np.uint8
    means = out.reshape(3, 3, -1).mean(axis=2)
    for got, idx in zip(means, [0, 10, 20], strict=True):
        dist = np.abs(colors.astype(float) - got).max(axis=1)
        assert dist.argmin() == idx
        assert dist[idx] < 6


def test_sampled_frame_seconds(color_video):
    path, _ = color_video
    # the frames of the test above, 0, 10 and 20 at 5 fps, and every second's frame without a cap
    assert sampled_frame_seconds(path, Sampling(3, 16)).tolist() == [0.0, 2.0, 4.0]
    assert sampled_frame_seconds(path, Sampling(30, 16)).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_read_video_frames_all_frames(color_video):
    path, colors = color_video
    out = read_video_frames(path, Sampling(30, 8, framerate=0))
    assert out.shape == (25, 3, 8, 8)
    means = out.reshape(25, 3, -1).mean(axis=2)
    np.testing.assert_allclose(means, colors, atol=6)


def test_read_video_frames_decord_width_bug(tmp_path):
    # decord's get_batch fails on some widths (48 here); the PyAV fallback must give the same frames
    colors = flat_colors(6)
    frames = np.broadcast_to(colors[:, None, None, :], (6, 32, 48, 3)).copy()
    frames[:, :, :8] = 0  # a black band on the left, to check the column order
    path = write_mp4(tmp_path / "w48.mp4", frames, fps=2)
    out = read_video_frames(path, Sampling(3, 32))
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
    out = read_video_frames(path, Sampling(4, 16))
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
        read_video_frames(missing, Sampling(4, 16))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=str(corrupt)):
        read_video_frames(corrupt, Sampling(4, 16))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=str(empty)):
        read_video_frames(empty, Sampling(4, 16))


@pytest.mark.parametrize("bad,field", [
    (dict(max_frames=0), "max_frames"), (dict(image_size=0), "image_size"), (dict(max_frames=2.5), "max_frames"),
    (dict(framerate=1.5), "framerate"), (dict(slice_framepos=3), "slice_framepos"),
    (dict(slice_framepos=True), "slice_framepos"),
])
def test_a_sampling_names_what_is_wrong(bad, field):
    with pytest.raises(DataError, match=f"frame sampling: {field} must be"):
        Sampling(**{"max_frames": 12, "image_size": 16, **bad})


def test_read_padded_frames_are_the_frames_padded_to_max_frames(color_video):
    path, _ = color_video
    padded, mask = read_padded_frames(path, Sampling(8, 16))
    frames = read_video_frames(path, Sampling(8, 16))
    assert len(frames) == sampled_frame_count(path, Sampling(8, 16)) == 5  # one per second of 5 s
    np.testing.assert_array_equal(padded[:5], frames)
    assert padded.shape == (8, 3, 16, 16) and not padded[5:].any() and mask.tolist() == [1] * 5 + [0] * 3
