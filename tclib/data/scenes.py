"""What a synthetic video shows: the visual vocabulary (a concept is an object of a color and shape on
a background), its captions, the plan of each video (two key scenes among distractor seconds), and
the rendering of its frames. tclib.data.synthetic writes them as a data set."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BACKGROUNDS",
    "CAPTION_TEMPLATES",
    "COLORS",
    "SHAPES",
    "Concept",
    "VideoPlan",
    "all_concepts",
    "caption_for",
    "plan_video",
    "render_image_caption_pairs",
    "render_scene_frame",
    "render_video",
]

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
class Motion:
    """Where an object is in the first frame of its run and how it drifts (pixels per frame)."""

    cx: float
    cy: float
    vx: float
    vy: float
    diameter: float


@dataclass
class VideoPlan:
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
    motions: tuple[Motion, Motion]
    clutter: dict[int, tuple[Concept, Motion]] = field(default_factory=dict)
    blank: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    captions: list[tuple[int, str]] = field(default_factory=list)  # (scene, caption)
    test_caption: int = 0  # index into captions used by the test csv
    category: int = 0

    @property
    def n_frames(self) -> int:
        return self.duration * self.fps


def plan_video(number: int, split: str, size: int, fps: int, captions_per_scene: int, seed: int) -> VideoPlan:
    """What video `number` shows, drawn from its own generator (seed, number): every draw in a fixed order."""
    rng = np.random.default_rng([seed, number, 0])
    concepts_list = all_concepts()
    duration = int(rng.integers(_DURATION_RANGE[0], _DURATION_RANGE[1] + 1))
    c0, c1 = rng.choice(len(concepts_list), size=2, replace=False)
    concepts = (concepts_list[int(c0)], concepts_list[int(c1)])
    scene_seconds = _scene_seconds(rng, duration)
    kinds = [""] * duration
    for scene in (0, 1):
        for sec in scene_seconds[scene]:
            kinds[sec] = f"scene{scene}"
    motions = (_large_motion(rng, size), _large_motion(rng, size))
    plan = VideoPlan(number=number, video_id=f"video{number}", split=split, duration=duration, fps=fps, size=size,
                     concepts=concepts, scene_seconds=scene_seconds, kinds=kinds, motions=motions,
                     category=int(rng.integers(0, 20)))
    _add_distractors(rng, plan, [c for c in concepts_list if c not in concepts])
    templates = rng.choice(len(CAPTION_TEMPLATES), size=2 * captions_per_scene, replace=False)
    for k, template in enumerate(templates):
        scene = k // captions_per_scene
        plan.captions.append((scene, caption_for(concepts[scene], int(template))))
    plan.test_caption = int(rng.integers(0, 2)) * captions_per_scene
    return plan


def _scene_seconds(rng: np.random.Generator, duration: int) -> tuple[list[int], list[int]]:
    """The seconds of the two key scenes: each 2-4 s long, in random order, with gaps around them."""
    lengths = [int(rng.integers(_SCENE_LEN_RANGE[0], _SCENE_LEN_RANGE[1] + 1)) for _ in range(2)]
    free = duration - sum(lengths)
    cuts = np.sort(rng.integers(0, free + 1, size=2))
    gaps = [int(cuts[0]), int(cuts[1] - cuts[0]), int(free - cuts[1])]
    order = [0, 1] if rng.random() < 0.5 else [1, 0]
    seconds: list[list[int]] = [[], []]
    pos = gaps[0]
    for k, scene in enumerate(order):
        seconds[scene] = list(range(pos, pos + lengths[scene]))
        pos += lengths[scene] + gaps[k + 1]
    return seconds[0], seconds[1]


def _large_motion(rng: np.random.Generator, size: int) -> Motion:
    """A key scene's object: large, near the center, drifting a little."""
    diameter = float(rng.uniform(*_LARGE_RANGE)) * size
    off = rng.uniform(-_OFFSET, _OFFSET, size=2) * size
    vel = rng.uniform(-_DRIFT, _DRIFT, size=2) * size
    return Motion(size / 2 + off[0], size / 2 + off[1], vel[0], vel[1], diameter)


def _add_distractors(rng: np.random.Generator, plan: VideoPlan, others: list[Concept]) -> None:
    """A distractor for every second outside the key scenes; clutter is a small object of another
    concept in one of the four quadrants."""
    size = plan.size
    for sec in range(plan.duration):
        if plan.kinds[sec]:
            continue
        kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
        plan.kinds[sec] = kind
        if kind == "blank":
            plan.blank[sec] = BLANK_COLORS[int(rng.integers(len(BLANK_COLORS)))]
        elif kind == "clutter":
            concept = others[int(rng.integers(len(others)))]
            diameter = float(rng.uniform(*_SMALL_RANGE)) * size
            centers = rng.uniform(0.22, 0.32, size=2) * size
            sides = rng.integers(0, 2, size=2)
            cx = centers[0] if sides[0] == 0 else size - centers[0]
            cy = centers[1] if sides[1] == 0 else size - centers[1]
            vel = rng.uniform(-_DRIFT, _DRIFT, size=2) * size / 2
            plan.clutter[sec] = (concept, Motion(float(cx), float(cy), vel[0], vel[1], diameter))


def render_video(plan: VideoPlan, seed: int) -> np.ndarray:
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
