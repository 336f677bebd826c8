"""Moments of users' videos in real seconds: at 29.97 and 23.976 frames a second (most phone, broadcast
and web video; film), segments reach each video's real end, every moment's frames are shown inside it,
and a scene placed at a known time of a long video is found at that time."""

import math
from fractions import Fraction

import numpy as np
import pytest
from conftest import write_mp4

from tclib.data import Sampling, moment_frame_indices
from tclib.data.frames import video_metadata
from tclib.search.build import IndexJob, build_index
from tclib.search.model import student_spec
from tclib.search.query import Index
from tclib.search.units import Moments, collection_of, unit_frames
from tclib.search.vectors import search

SECONDS = 190  # the long video's length
SCENE_AT, SCENE_SECONDS = 170, 4  # where the scene is placed, and how long it lasts (one moment)
MOMENT, STRIDE = 4, 2
LEVELS = 20 + 25 * np.arange(8)  # a stripe's gray level for each base-8 digit of a frame's second
STRIPES = Sampling(max_frames=12, image_size=32, framerate=1, slice_framepos=2)


def second_stripes(second: int, size: int = 32) -> np.ndarray:
    """An RGB frame that shows `second` in base 8: three vertical stripes, a gray level per digit."""
    frame = np.zeros((size, size, 3), np.uint8)
    edges = np.linspace(0, size, 4).astype(int)
    for k, digit in enumerate((second // 64 % 8, second // 8 % 8, second % 8)):
        frame[:, edges[k]:edges[k + 1]] = LEVELS[digit]
    return frame


def shown_second(frame: np.ndarray) -> int:
    """The second a (3, S, S) frame of `second_stripes` shows, read at the middle of each stripe."""
    size = frame.shape[-1]
    columns = ((np.linspace(0, size, 4)[:3] + np.linspace(0, size, 4)[1:]) / 2).astype(int)
    digits = [int(np.clip(np.round((frame[:, :, c].mean() - 20) / 25), 0, 7)) for c in columns]
    return digits[0] * 64 + digits[1] * 8 + digits[2]


@pytest.fixture(scope="module", params=[Fraction(30000, 1001), Fraction(24000, 1001)], ids=["29.97fps", "23.976fps"])
def long_video(request, synthetic_set, tmp_path_factory):
    """A folder with one video of SECONDS s at the given rate: each frame shows (`second_stripes`) the
    second its time on screen ends in, so the frame a player shows at second s shows s; but for
    SCENE_SECONDS s from SCENE_AT the frames of a synthetic test video (at its own 2 frames a second).
    Returns (folder, fps, the scene video's file)."""
    import decord

    fps = request.param
    scene_file = synthetic_set / "videos" / "video4.mp4"
    scene = decord.VideoReader(str(scene_file), num_threads=1)
    scene_frames, scene_fps = scene.get_batch(list(range(len(scene)))).asnumpy(), round(scene.get_avg_fps())
    frames = []
    for i in range(int(SECONDS * fps)):
        t = Fraction(i) / fps
        if SCENE_AT <= t < SCENE_AT + SCENE_SECONDS:
            frames.append(scene_frames[min(int((t - SCENE_AT) * scene_fps), len(scene_frames) - 1)])
        else:
            frames.append(second_stripes(math.ceil((i + 1) / fps) - 1))
    folder = tmp_path_factory.mktemp("long")
    write_mp4(folder / "long.mp4", np.stack(frames), fps)
    return folder, fps, scene_file


def test_a_moment_is_read_at_its_real_time():
    at_2997 = moment_frame_indices(20000, 30000 / 1001, STRIPES, 600, 604)  # floor(t · 29.97) for t = 600..603
    assert at_2997.tolist() == [17982, 18011, 18041, 18071]  # the reference's int(fps) reads 17400.. (580.6 s)
    assert moment_frame_indices(150, 25, STRIPES, 2.0, 2.4).tolist() == [55]  # shorter than a step: its middle
    every = Sampling(max_frames=12, image_size=32, framerate=0)
    assert moment_frame_indices(20, 2, every, 1, 2.5).tolist() == [2, 3, 4]  # every frame shown in [1, 2.5)
    assert moment_frame_indices(100, 25, Sampling(12, 32, framerate=2), 3.5, 5).tolist() == [87]  # 100+: gone
    kept = moment_frame_indices(200, 10, Sampling(max_frames=4, image_size=32), 0, 20)  # 20 taken, 4 kept
    assert kept.tolist() == [0, 60, 120, 190]  # evenly spaced as a clip's: linspace(0, 19, 4) truncated


def test_segments_reach_the_real_end_and_every_frame_is_shown_inside_its_moment(long_video):
    folder, fps, _ = long_video
    frame_count, rate = video_metadata(folder / "long.mp4")
    assert frame_count == int(SECONDS * fps) and rate == pytest.approx(float(fps), abs=1e-3)
    units = collection_of(videos=str(folder), moments=Moments(seconds=MOMENT, stride=STRIDE)).units
    duration = frame_count / rate
    assert units.end.max() == round(duration, 3) and units.start.max() == round(duration - MOMENT, 3)
    assert units.start.tolist()[:-1] == list(range(0, int(duration) - MOMENT + 1, STRIDE))
    last = f"long@{units.start.iloc[-1]:g}-{round(duration, 3):g}"
    assert (units.clock == "player").all() and units.key.iloc[-1] == last
    for unit in units.itertuples(index=False):
        shown_from = moment_frame_indices(frame_count, rate, STRIPES, unit.start, unit.end) / rate
        assert (shown_from >= unit.start - 1 / rate).all() and (shown_from < unit.end).all(), unit.key
        if unit.end <= SCENE_AT or unit.start > SCENE_AT + SCENE_SECONDS:  # at its end its last frame is on
            frames, mask = unit_frames(str(folder / "long.mp4"), STRIPES, unit.start, unit.end, unit.clock)
            seconds = [shown_second(f) for f in frames[mask.astype(bool)]]
            assert len(seconds) == math.ceil(unit.end - unit.start - 1e-6) and seconds == sorted(set(seconds))
            assert int(unit.start) <= seconds[0] and seconds[-1] < math.ceil(unit.end), (unit.key, seconds)
            if unit.start == int(unit.start):  # a frame a second from a whole second: exactly those seconds
                assert seconds == list(range(int(unit.start), int(unit.start) + MOMENT)), unit.key


def test_a_scene_placed_at_a_known_time_is_found_there(long_video, demo_run, tmp_path):
    folder, _, scene_file = long_video
    _, P = demo_run
    spec = student_spec(P, "teachclip:xclip", 0)
    build_index(IndexJob(tmp_path / "index", collection_of(videos=str(folder), moments=Moments(seconds=MOMENT, stride=STRIDE)), spec,
                batch_size=32, workers=1))
    index = Index(tmp_path / "index")
    frames, mask = unit_frames(str(scene_file), spec.frame_sampling, None, None, "")  # the scene on its own
    import torch

    with torch.no_grad():
        query, _ = index.student.encode_video(torch.from_numpy(frames[None]), torch.from_numpy(mask[None]))
    _, ids = search(index.stored, index.index, index.choice, query.float().numpy(), k=1)
    best = index.units.iloc[int(ids[0, 0])]
    assert abs(best.start - SCENE_AT) <= STRIDE, best.key  # int(fps) seconds would find it 5.5 s (6.9 s) later
