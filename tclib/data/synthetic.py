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
from pathlib import Path

import numpy as np
import pandas as pd

from tclib.data.pool import parallel_map
from tclib.data.scenes import CAPTION_TEMPLATES, VideoPlan, plan_video, render_video
from tclib.errors import DataError
from tclib.files import atomic_path, read_json, write_text

__all__ = ["relevance_table", "write_long_videos", "write_synthetic_msrvtt"]

log = logging.getLogger(__name__)

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


def _write_one(args: tuple[VideoPlan, str, int]) -> str:
    plan, path_str, seed = args
    path = Path(path_str)
    _encode_mp4(render_video(plan, seed), path, plan.fps)
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


def _write_annotations(root: Path, plans: list[VideoPlan], n_train: int) -> None:
    """MSR-VTT's annotation files, the ground truth (relevance.json) and what each second shows
    (video_meta.json), each written atomically."""
    sentences, relevance, test_rows = _sentences(plans)
    train_ids = [p.video_id for p in plans[:n_train]]
    n_7k = (len(train_ids) * 7) // 9
    write_text(root / "relevance.json", json.dumps(relevance, indent=1))
    write_text(root / "video_meta.json", json.dumps([_video_meta(plan) for plan in plans], indent=1))
    write_text(root / "MSRVTT_train.7k.csv", _csv_text(["video_id"], [[v] for v in train_ids[:n_7k]]))
    write_text(root / "MSRVTT_train.9k.csv", _csv_text(["video_id"], [[v] for v in train_ids]))
    write_text(
        root / "MSRVTT_JSFUSION_test.csv", _csv_text(["key", "vid_key", "video_id", "sentence"], test_rows)
    )
    data = {"info": {"description": "synthetic text-video retrieval data in the MSR-VTT layout", "version": "1.0"},
            "videos": [_video_entry(plan) for plan in plans], "sentences": sentences}
    write_text(root / "MSRVTT_data.json", json.dumps(data))


def _sentences(plans: list[VideoPlan]) -> tuple[list[dict], list[dict], list[list[str]]]:
    """MSR-VTT's sentences, the relevant seconds of each, and the test csv's rows (one caption per
    test video), numbered across all videos."""
    sentences: list[dict] = []
    relevance: list[dict] = []
    test_rows: list[list[str]] = []
    for plan in plans:
        for k, (scene, caption) in enumerate(plan.captions):
            sen_id = len(sentences)
            sentences.append({"caption": caption, "video_id": plan.video_id, "sen_id": sen_id})
            relevance.append({"video_id": plan.video_id, "caption": caption, "sen_id": sen_id, "scene": scene,
                              "relevant_seconds": list(plan.scene_seconds[scene]), "duration": plan.duration})
            if plan.split == "test" and k == plan.test_caption:
                test_rows.append([f"ret{len(test_rows)}", f"msr{plan.number}", plan.video_id, caption])
    return sentences, relevance, test_rows


def _video_entry(plan: VideoPlan) -> dict:
    return {"category": plan.category, "url": f"synthetic://{plan.video_id}", "video_id": plan.video_id,
            "start time": 0.0, "end time": float(plan.duration), "split": plan.split, "id": plan.number}


def _video_meta(plan: VideoPlan) -> dict:
    return {"video_id": plan.video_id, "split": plan.split, "duration": plan.duration, "fps": plan.fps,
            "n_frames": plan.n_frames, "seconds": list(plan.kinds),
            "scenes": [{"concept": plan.concepts[s].as_dict(), "seconds": list(plan.scene_seconds[s])} for s in (0, 1)]}


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
        plan_video(n, "train" if n < n_train else "test", size, fps, captions_per_scene, seed)
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


def write_long_videos(root: str | os.PathLike, folder: str | os.PathLike, per_video: int = 4,
                      split: str = "test") -> Path:
    """Longer videos to find moments in: the videos of a synthetic set's `split`, `per_video` at a
    time, one after the other (the same frames, losslessly), as `folder/long<N>.mp4`, and
    `folder/long_videos.json`: for each, the video of each stretch and its seconds [start, end).
    Videos already written with their frame count are kept."""
    import decord

    root, folder = Path(root), Path(folder)
    meta = [m for m in read_json(root / "video_meta.json", "synthetic data file") if m["split"] == split]
    folder.mkdir(parents=True, exist_ok=True)
    table = []
    for n, first in enumerate(range(0, len(meta) - per_video + 1, per_video)):
        parts, second = [], 0
        for m in meta[first:first + per_video]:
            parts.append({"video_id": m["video_id"], "start": second, "end": second + m["duration"]})
            second += m["duration"]
        table.append({"video_id": f"long{n}", "fps": meta[first]["fps"], "parts": parts})
        path = folder / f"long{n}.mp4"
        if path.exists() and _decoded_frame_count(path) == second * meta[first]["fps"]:
            continue
        frames = [decord.VideoReader(str(root / "videos" / f"{part['video_id']}.mp4"), num_threads=1)
                  for part in parts]
        _encode_mp4(np.concatenate([v.get_batch(list(range(len(v)))).asnumpy() for v in frames]), path,
                    meta[first]["fps"])
    write_text(folder / "long_videos.json", json.dumps(table, indent=1))
    log.info("%d long videos of %d %s videos each in %s", len(table), per_video, split, folder)
    return folder
