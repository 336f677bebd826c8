"""A synthetic text-video data set written in the MSR-VTT layout, with real H.264 mp4 files.

Each video shows two *key scenes* among distractor seconds. A key scene is one visual concept,
(color, shape, background), drawn as a large object near the frame center that drifts a little
from frame to frame. Each caption describes exactly one key scene, so only that scene's frames are
relevant to it; the remaining seconds are distractors:

* ``noise``: uniform random pixels;
* ``blank``: a flat black, white or gray frame;
* ``transition``: a 50/50 blend of noise with the frame shown just before (gray at the start);
* ``clutter``: a *small*, off-center object of a concept different from both key scenes.

Key scenes are large and centered while distractors are not: that visual cue is what a
text-independent frame-weighting module (TeachCLIP's AFA) can pick up, whereas mean pooling
dilutes the relevant frames with the distractors. Which seconds are relevant to which caption is
written to ``relevance.json`` so frame weights can be scored against the ground truth.

Files written under ``root``::

    videos/video{N}.mp4          H.264, yuv420p, ``fps`` frames per second
    MSRVTT_data.json             {"info", "videos": [...], "sentences": [...]} as MSR-VTT
    MSRVTT_train.9k.csv          column video_id: all training videos
    MSRVTT_train.7k.csv          column video_id: the first 7/9 of them
    MSRVTT_JSFUSION_test.csv     key,vid_key,video_id,sentence: one caption per test video
    relevance.json               per caption: video_id, caption, sen_id, relevant_seconds, duration
    video_meta.json              per video: duration, fps, kind of each second, the two scenes

Everything is decided by ``seed``: each video draws from its own random generator (seeded by
``(seed, video number)``), so an interrupted run resumes without changing what was written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tclib.data.pool import parallel_map
from tclib.errors import DataError
from tclib.files import atomic_path, read_json, write_text

__all__ = [
    "BACKGROUNDS",
    "CAPTION_TEMPLATES",
    "COLORS",
    "SHAPES",
    "Concept",
    "all_concepts",
    "caption_for",
    "render_image_caption_pairs",
    "relevance_table",
    "render_scene_frame",
    "write_synthetic_msrvtt",
]

log = logging.getLogger(__name__)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 190, 60),
    "blue": (40, 80, 240),
    "yellow": (240, 225, 30),
    "cyan": (30, 220, 230),
    "magenta": (220, 40, 210),
    "white": (245, 245, 245),
    "orange": (250, 140, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (12, 12, 12),
    "gray": (128, 128, 128),
    "navy": (20, 20, 100),
    "brown": (110, 70, 30),
}
CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {color} {shape} on a {bg} background",
    "there is a {shape} colored {color} over {bg}",
    "{bg} scene showing a {color} {shape}",
    "a {shape} in {color} with {bg} behind it",
    "the video shows a {color} {shape} against {bg}",
    "a {color} {shape} in front of a {bg} backdrop",
    "someone filmed a {color} {shape} on {bg}",
    "a big {color} {shape} drifting over a {bg} background",
)
DISTRACTOR_KINDS: tuple[str, ...] = ("noise", "blank", "transition", "clutter")
BLANK_COLORS: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (255, 255, 255), (128, 128, 128))

_DURATION_RANGE = (10, 14)  # seconds, inclusive
_SCENE_LEN_RANGE = (2, 4)  # seconds, inclusive
_LARGE_RANGE = (0.45, 0.60)  # object size as a fraction of the frame
_SMALL_RANGE = (0.15, 0.20)
_OFFSET = 0.06  # max start offset of a key-scene object from the center (fraction of frame)
_DRIFT = 0.02  # max drift per frame (fraction of frame)


@dataclass(frozen=True)
class Concept:
    """One visual concept: an object of a color and shape on a background."""

    color: str
    shape: str
    background: str

    def as_dict(self) -> dict[str, str]:
        return {"color": self.color, "shape": self.shape, "background": self.background}


def all_concepts() -> list[Concept]:
    """The 128 concepts (8 colors x 4 shapes x 4 backgrounds), in a fixed order."""
    return [Concept(c, s, b) for c in COLORS for s in SHAPES for b in BACKGROUNDS]


def caption_for(concept: Concept, template: int) -> str:
    """Caption of ``concept`` with template number ``template`` (lower case, 'an' before vowels)."""
    text = CAPTION_TEMPLATES[template].format(
        color=concept.color, shape=concept.shape, bg=concept.background
    )
    return re.sub(r"\ba (?=[aeiou])", "an ", text).lower()


# ----------------------------------------------------------------------------- drawing


def _shape_mask(shape: str, size: int, cx: float, cy: float, diameter: float) -> np.ndarray:
    """Boolean (size, size) mask of ``shape`` centered at (cx, cy), about ``diameter`` wide."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    r = diameter / 2.0
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        h = 0.88 * r
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape == "triangle":
        # upright isosceles triangle: apex at the top, base at the bottom
        top, bottom = cy - r, cy + r
        half_width = r * (yy - top) / (bottom - top)
        return (yy >= top) & (yy <= bottom) & (np.abs(dx) <= half_width)
    if shape == "cross":
        t = r / 3.0
        return ((np.abs(dx) <= r) & (np.abs(dy) <= t)) | ((np.abs(dy) <= r) & (np.abs(dx) <= t))
    raise ValueError(f"unknown shape {shape!r}")


def render_scene_frame(
    concept: Concept, size: int, cx: float, cy: float, diameter: float
) -> np.ndarray:
    """uint8 (size, size, 3) frame: the background filled, one object of the concept drawn on it."""
    frame = np.empty((size, size, 3), dtype=np.uint8)
    frame[:] = BACKGROUNDS[concept.background]
    frame[_shape_mask(concept.shape, size, cx, cy, diameter)] = COLORS[concept.color]
    return frame


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- video plans


@dataclass
class _Motion:
    """Where an object is in the first frame of its run and how it drifts (pixels per frame)."""

    cx: float
    cy: float
    vx: float
    vy: float
    diameter: float


@dataclass
class _VideoPlan:
    """Everything about one video except its pixel noise; cheap to compute, used for resume."""

    number: int
    video_id: str
    split: str
    duration: int
    fps: int
    size: int
    concepts: tuple[Concept, Concept]
    scene_seconds: tuple[list[int], list[int]]
    kinds: list[str]  # per second: scene0, scene1, noise, blank, transition, clutter
    motions: tuple[_Motion, _Motion]
    clutter: dict[int, tuple[Concept, _Motion]] = field(default_factory=dict)
    blank: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    captions: list[tuple[int, str]] = field(default_factory=list)  # (scene, caption)
    test_caption: int = 0  # index into captions used by the test csv
    category: int = 0

    @property
    def n_frames(self) -> int:
        return self.duration * self.fps


def _plan_video(
    number: int, split: str, size: int, fps: int, captions_per_scene: int, seed: int
) -> _VideoPlan:
    rng = np.random.default_rng([seed, number, 0])
    concepts_list = all_concepts()
    duration = int(rng.integers(_DURATION_RANGE[0], _DURATION_RANGE[1] + 1))
    c0, c1 = rng.choice(len(concepts_list), size=2, replace=False)
    concepts = (concepts_list[int(c0)], concepts_list[int(c1)])

    lengths = [int(rng.integers(_SCENE_LEN_RANGE[0], _SCENE_LEN_RANGE[1] + 1)) for _ in range(2)]
    free = duration - sum(lengths)
    cuts = np.sort(rng.integers(0, free + 1, size=2))
    gaps = [int(cuts[0]), int(cuts[1] - cuts[0]), int(free - cuts[1])]
    order = [0, 1] if rng.random() < 0.5 else [1, 0]
    scene_seconds: list[list[int]] = [[], []]
    pos = gaps[0]
    for k, scene in enumerate(order):
        scene_seconds[scene] = list(range(pos, pos + lengths[scene]))
        pos += lengths[scene] + gaps[k + 1]

    kinds = [""] * duration
    for scene in (0, 1):
        for sec in scene_seconds[scene]:
            kinds[sec] = f"scene{scene}"

    def large_motion() -> _Motion:
        diameter = float(rng.uniform(*_LARGE_RANGE)) * size
        off = rng.uniform(-_OFFSET, _OFFSET, size=2) * size
        vel = rng.uniform(-_DRIFT, _DRIFT, size=2) * size
        return _Motion(size / 2 + off[0], size / 2 + off[1], vel[0], vel[1], diameter)

    motions = (large_motion(), large_motion())
    plan = _VideoPlan(
        number=number,
        video_id=f"video{number}",
        split=split,
        duration=duration,
        fps=fps,
        size=size,
        concepts=concepts,
        scene_seconds=(scene_seconds[0], scene_seconds[1]),
        kinds=kinds,
        motions=motions,
        category=int(rng.integers(0, 20)),
    )
    others = [c for c in concepts_list if c not in concepts]
    for sec in range(duration):
        if kinds[sec]:
            continue
        kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
        kinds[sec] = kind
        if kind == "blank":
            plan.blank[sec] = BLANK_COLORS[int(rng.integers(len(BLANK_COLORS)))]
        elif kind == "clutter":
            concept = others[int(rng.integers(len(others)))]
            diameter = float(rng.uniform(*_SMALL_RANGE)) * size
            # off-center: the object sits in one of the four quadrants
            centers = rng.uniform(0.22, 0.32, size=2) * size
            sides = rng.integers(0, 2, size=2)
            cx = centers[0] if sides[0] == 0 else size - centers[0]
            cy = centers[1] if sides[1] == 0 else size - centers[1]
            vel = rng.uniform(-_DRIFT, _DRIFT, size=2) * size / 2
            plan.clutter[sec] = (concept, _Motion(float(cx), float(cy), vel[0], vel[1], diameter))

    n_captions = 2 * captions_per_scene
    templates = rng.choice(len(CAPTION_TEMPLATES), size=n_captions, replace=False)
    for k, template in enumerate(templates):
        scene = k // captions_per_scene
        plan.captions.append((scene, caption_for(concepts[scene], int(template))))
    plan.test_caption = int(rng.integers(0, 2)) * captions_per_scene
    return plan


def _render_video(plan: _VideoPlan, seed: int) -> np.ndarray:
    """uint8 (n_frames, size, size, 3) frames of a planned video."""
    rng = np.random.default_rng([seed, plan.number, 1])
    size, fps = plan.size, plan.fps
    frames = np.empty((plan.n_frames, size, size, 3), dtype=np.uint8)
    previous = np.full((size, size, 3), 128, dtype=np.uint8)
    lo, hi = 0.2 * size, 0.8 * size  # keep drifting key objects well inside the frame
    for sec, kind in enumerate(plan.kinds):
        for j in range(fps):
            i = sec * fps + j
            if kind.startswith("scene"):
                scene = int(kind[-1])
                m = plan.motions[scene]
                t = i - plan.scene_seconds[scene][0] * fps
                cx = float(np.clip(m.cx + m.vx * t, lo, hi))
                cy = float(np.clip(m.cy + m.vy * t, lo, hi))
                frame = render_scene_frame(plan.concepts[scene], size, cx, cy, m.diameter)
            elif kind == "noise":
                frame = _noise(rng, size)
            elif kind == "blank":
                frame = np.empty((size, size, 3), dtype=np.uint8)
                frame[:] = plan.blank[sec]
            elif kind == "transition":
                mix = (_noise(rng, size).astype(np.uint16) + previous.astype(np.uint16)) // 2
                frame = mix.astype(np.uint8)
            elif kind == "clutter":
                concept, m = plan.clutter[sec]
                frame = render_scene_frame(concept, size, m.cx + m.vx * j, m.cy + m.vy * j, m.diameter)
            else:  # pragma: no cover - plans only hold the kinds above
                raise ValueError(f"unknown second kind {kind!r}")
            frames[i] = frame
            previous = frame
    return frames


# ----------------------------------------------------------------------------- mp4 I/O


def _encode_mp4(frames: np.ndarray, path: Path, fps: int) -> None:
    """Write RGB frames as H.264 (yuv420p) mp4, atomically (temporary file, then rename)."""
    import av

    with atomic_path(path, tag="partial") as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            stream = container.add_stream("libx264", rate=fps)
            stream.width = frames.shape[2]
            stream.height = frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"qp": "0", "preset": "medium"}  # lossless: decoded frames are exactly the rendered ones
            stream.codec_context.thread_count = 1  # one encoder thread: the same bytes on every run
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()


def _decoded_frame_count(path: Path) -> int | None:
    """Number of frames decord sees in ``path``; None when it cannot open the file."""
    import decord

    try:
        return len(decord.VideoReader(str(path), num_threads=1))
    except Exception:  # decord raises its own error types for unreadable files
        return None


def _write_one(args: tuple[_VideoPlan, str, int]) -> str:
    plan, path_str, seed = args
    path = Path(path_str)
    _encode_mp4(_render_video(plan, seed), path, plan.fps)
    count = _decoded_frame_count(path)
    if count != plan.n_frames:
        raise DataError(f"{path}: wrote {plan.n_frames} frames but decord reads {count}")
    return plan.video_id


# ----------------------------------------------------------------------------- annotations


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _write_annotations(root: Path, plans: list[_VideoPlan], n_train: int) -> None:
    videos, sentences, relevance, meta = [], [], [], []
    test_rows: list[list[str]] = []
    sen_id = 0
    for plan in plans:
        videos.append(
            {
                "category": plan.category,
                "url": f"synthetic://{plan.video_id}",
                "video_id": plan.video_id,
                "start time": 0.0,
                "end time": float(plan.duration),
                "split": plan.split,
                "id": plan.number,
            }
        )
        for k, (scene, caption) in enumerate(plan.captions):
            sentences.append({"caption": caption, "video_id": plan.video_id, "sen_id": sen_id})
            relevance.append(
                {
                    "video_id": plan.video_id,
                    "caption": caption,
                    "sen_id": sen_id,
                    "scene": scene,
                    "relevant_seconds": list(plan.scene_seconds[scene]),
                    "duration": plan.duration,
                }
            )
            if plan.split == "test" and k == plan.test_caption:
                i = len(test_rows)
                test_rows.append([f"ret{i}", f"msr{plan.number}", plan.video_id, caption])
            sen_id += 1
        meta.append(
            {
                "video_id": plan.video_id,
                "split": plan.split,
                "duration": plan.duration,
                "fps": plan.fps,
                "n_frames": plan.n_frames,
                "seconds": list(plan.kinds),
                "scenes": [
                    {"concept": plan.concepts[s].as_dict(), "seconds": list(plan.scene_seconds[s])}
                    for s in (0, 1)
                ],
            }
        )
    data = {
        "info": {
            "description": "synthetic text-video retrieval data in the MSR-VTT layout",
            "version": "1.0",
        },
        "videos": videos,
        "sentences": sentences,
    }
    train_ids = [p.video_id for p in plans[:n_train]]
    n_7k = (len(train_ids) * 7) // 9
    write_text(root / "relevance.json", json.dumps(relevance, indent=1))
    write_text(root / "video_meta.json", json.dumps(meta, indent=1))
    write_text(root / "MSRVTT_train.7k.csv", _csv_text(["video_id"], [[v] for v in train_ids[:n_7k]]))
    write_text(root / "MSRVTT_train.9k.csv", _csv_text(["video_id"], [[v] for v in train_ids]))
    write_text(
        root / "MSRVTT_JSFUSION_test.csv", _csv_text(["key", "vid_key", "video_id", "sentence"], test_rows)
    )
    write_text(root / "MSRVTT_data.json", json.dumps(data))


# ----------------------------------------------------------------------------- public API


def write_synthetic_msrvtt(
    root: str | os.PathLike,
    n_train: int = 240,
    n_test: int = 100,
    size: int = 64,
    fps: int = 2,
    captions_per_scene: int = 2,
    seed: int = 0,
    workers: int = 1,
) -> Path:
    """Write the synthetic data set under ``root`` and return ``root`` as a Path.

    Videos ``video0 .. video{n_train-1}`` are the training split, the next ``n_test`` the test
    split. Videos already on disk with the expected frame count are kept (resume); annotation
    files are written last, each atomically.
    """
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train}, {n_test}")
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number >= 16 (H.264 yuv420p), got {size}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    if captions_per_scene < 1 or 2 * captions_per_scene > len(CAPTION_TEMPLATES):
        raise ValueError(
            f"captions_per_scene must be in 1..{len(CAPTION_TEMPLATES) // 2}, got {captions_per_scene}"
        )
    root = Path(root)
    video_dir = root / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)

    plans = [
        _plan_video(n, "train" if n < n_train else "test", size, fps, captions_per_scene, seed)
        for n in range(n_train + n_test)
    ]
    todo = []
    for plan in plans:
        path = video_dir / f"{plan.video_id}.mp4"
        if path.exists() and _decoded_frame_count(path) == plan.n_frames:
            continue
        todo.append((plan, str(path), seed))
    log.info(
        "synthetic MSR-VTT at %s: %d videos, %d to write, %d already there",
        root, len(plans), len(todo), len(plans) - len(todo),
    )
    for _ in parallel_map(_write_one, todo, workers, "write synthetic videos", ordered=False):
        pass
    _write_annotations(root, plans, n_train)
    return root


def render_image_caption_pairs(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``n`` independent (scene frame, caption) pairs of random concepts and templates.

    Returns uint8 images (n, size, size, 3) and their captions. Used to pretrain a tiny CLIP
    backbone on the synthetic visual vocabulary.
    """
    rng = np.random.default_rng([seed, 1 << 20])
    concepts = all_concepts()
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions: list[str] = []
    for i in range(n):
        concept = concepts[int(rng.integers(len(concepts)))]
        diameter = float(rng.uniform(*_LARGE_RANGE)) * size
        off = rng.uniform(-2 * _OFFSET, 2 * _OFFSET, size=2) * size
        images[i] = render_scene_frame(concept, size, size / 2 + off[0], size / 2 + off[1], diameter)
        captions.append(caption_for(concept, int(rng.integers(len(CAPTION_TEMPLATES)))))
    return images, captions


def relevance_table(root: str | os.PathLike) -> pd.DataFrame:
    """The ground-truth caption -> relevant seconds table of a synthetic data set.

    Columns video_id, caption, sen_id, relevant_seconds (list of int), duration (and scene).
    """
    path = Path(root) / "relevance.json"
    data = read_json(path, "synthetic data file")
    if not isinstance(data, list):
        raise DataError(f"{path} must hold a JSON list, found {type(data).__name__}")
    required = ["video_id", "caption", "sen_id", "relevant_seconds", "duration"]
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"entry {i} of {path} is not an object")
        for key in required:
            if key not in row:
                raise DataError(f"entry {i} of {path} has no {key!r}")
    return pd.DataFrame(data, columns=required + [c for c in (data[0] if data else {}) if c not in required])
