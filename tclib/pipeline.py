"""The pipeline's stages, one function per notebook step, all writing under results/<exp>/.

    prepare_data       synthetic data (demo), annotations, frame cache, backbone pretraining (demo)
    prepare_teachers   train or load each teacher per seed, cache its features on the training set
    train_students     CLIP4Clip baselines and TeachCLIP students, per seed
    evaluate_all       metrics of every model and seed -> metrics.csv, table.md, ranks.csv
    attention_report   AFA weights vs teacher relevance vs ground truth -> attention.png

Every stage is skipped when its outputs exist and its inputs are unchanged (tclib.stages). What the
notebooks show between stages lives in tclib.analysis (ground truth, frame weights, rankings),
tclib.plots (figures) and tclib.notebook (tables and the notebooks' set-up).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pandas as pd
import torch

from .data import FrameCache, PairDataset, build_frame_cache, read_annotations, write_synthetic_msrvtt
from .data.cache import DecodedFrames
from .analysis import afa_weights, attention_statistics, correct_ranks, ground_truth, teacher_relevance
from .errors import ParamsError
from .files import write_text
from .evaluate import INFERENCES, TestSet, metrics_of, similarity_matrix
from .models import CLIP4Clip, Teacher, Tokenizer, build_teacher, load_checkpoint, load_clip
from .models.checkpoint import save_checkpoint
from .params import Params
from .plots import Figure, attention_figure
from .pretrain import pretrain_clip
from .scoring import (CachedTeacherScores, OnlineTeacherScores, file_sha256, read_teacher_features,
                      strings_sha256, write_teacher_features)
from .stages import Stage, file_identity, fingerprint
from .teaching import ContrastiveObjective, TeachingObjective
from .train import TrainConfig, resolve_device, seed_everything, train

log = logging.getLogger(__name__)

RUNS = {
    "clip4clip-meanP": dict(label="CLIP4Clip (meanP)", temporal="meanP", afa=False, coarse=False, fine=False),
    "clip4clip-seqTransf": dict(label="CLIP4Clip (seqTransf)", temporal="seqTransf", afa=False, coarse=False,
                                fine=False),
    "teachclip-coarse": dict(label="TeachCLIP (coarse only)", temporal="seqTransf", afa=True, coarse=True,
                             fine=False),
    "teachclip": dict(label="TeachCLIP (coarse + fine)", temporal="seqTransf", afa=True, coarse=True, fine=True),
}
TEACHER_NAMES = {"xclip": "X-CLIP", "ts2net": "TS2-Net", "xpool": "X-Pool"}
TEACHER_LABELS = {name: f"{label} (teacher)" for name, label in TEACHER_NAMES.items()}

# What the models compute beyond the params (padded slots zero in normalized space, frame positions
# sized by the context length, the teacher cache's format): part of every model stage's inputs.
MODEL_FORMAT = 2
TEACHER_FEATURES_FORMAT = "float16 memmap, training videos only"  # the .npy layout's name (kept: it keys folders)


def run_spec(run: str) -> dict:
    """A run's spec from RUNS, with `teachers`: those named after ':' (teachclip:xclip+ts2net), else None
    (every teacher of the params), and its `label`, naming the teachers when they are given."""
    base, _, taught_by = run.partition(":")
    spec = dict(RUNS[base])
    spec["teachers"] = taught_by.split("+") if taught_by else None
    if taught_by:
        names = " + ".join(TEACHER_NAMES.get(t, t) for t in spec["teachers"])
        spec["label"] = f"TeachCLIP ({names})" if spec["fine"] else f"TeachCLIP coarse only ({names})"
    return spec


def run_teachers(P: Params, run: str) -> list[str]:
    """The teachers that teach `run` (none for the CLIP4Clip baselines)."""
    spec = run_spec(run)
    return (spec["teachers"] or list(P.teachers)) if spec["coarse"] else []


def image_size_of(model_name: str) -> int:
    config = open_clip.get_model_config(model_name)
    if config is None:
        from .errors import ParamsError

        raise ParamsError(f"unknown clip_model {model_name!r}")
    size = config["vision_cfg"]["image_size"]
    return int(size if isinstance(size, int) else size[0])


# ------------------------------------------------------------------------------------------ data


@dataclass
class Data:
    """What the later stages read: annotation tables, the frame cache, the backbone to start from,
    and the identities that the stages' fingerprints are made of."""

    train: pd.DataFrame
    test: pd.DataFrame
    cache: FrameCache | DecodedFrames
    clip_pretrained: str  # the params' own value, or the pretrained demo backbone's file
    frames_fingerprint: str  # sampling, video files and segments (and the synthetic set's params)
    train_fingerprint: str  # the frames, and the (video, caption) pairs actually used for training
    backbone_fingerprint: str  # the CLIP weights every model starts from


def prepare_data(P: Params) -> Data:
    """Write the synthetic set (demo), read the annotations, build the frame cache, pretrain (demo)."""
    root = Path(P.data_root)
    if P.synthetic:
        write_synthetic_msrvtt(root, n_train=P.synthetic_train_videos, n_test=P.synthetic_test_videos,
                               size=P.synthetic_frame_size, seed=P.synthetic_seed, workers=P.decode_workers)
    train_df, test_df = read_splits(P)
    videos = video_specs(train_df, test_df)
    sampling = dict(max_frames=P.max_frames, image_size=image_size_of(P.clip_model), framerate=P.framerate,
                    slice_framepos=P.slice_framepos, workers=P.decode_workers)
    frames_fp = frames_fingerprint(P, videos)
    if P.frame_cache:
        cache = build_frame_cache(videos, frames_dir(P, frames_fp), **sampling, storage=P.frame_cache_format,
                                  jpeg_quality=P.jpeg_quality)
    else:
        cache = DecodedFrames(videos, **sampling)
    failed = set(cache.failed)
    if failed:
        log.warning("%d videos could not be decoded (see %s); their captions are left out",
                    len(failed), frames_dir(P, frames_fp) / "failures.csv")
    train_df = train_df[~train_df.clip_id.isin(failed)].reset_index(drop=True)
    test_df = test_df[~test_df.clip_id.isin(failed)].reset_index(drop=True)
    clip_pretrained = pretrain_backbone(P)
    return Data(train_df, test_df, cache, clip_pretrained, frames_fp, train_fingerprint(frames_fp, train_df),
                backbone_fingerprint(P))


def read_splits(P: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    videos_dir = P.videos_dir or None
    return annotations(P, P.train_split, videos_dir), annotations(P, P.test_split, videos_dir)


def video_specs(*tables: pd.DataFrame) -> dict:
    """clip id -> video file, or (file, start, end) for a segment, over the rows of `tables`."""
    videos = {}
    for row in pd.concat(tables).itertuples(index=False):
        videos[row.clip_id] = row.video_path if pd.isna(row.start) else (row.video_path, int(row.start), int(row.end))
    return videos


def frames_fingerprint(P: Params, videos: dict) -> str:
    """What the frame cache holds: the sampling, every clip's resolved file and segment, for the
    synthetic set the parameters that make its files (same names, other content), and for a JPEG
    cache its quality (a raw cache's fingerprint is what it was before JPEG caches existed)."""
    resolved = {clip: [str(Path(v if isinstance(v, str) else v[0]).resolve()), *([] if isinstance(v, str) else v[1:])]
                for clip, v in videos.items()}
    synthetic = P.values(["synthetic_train_videos", "synthetic_test_videos", "synthetic_frame_size",
                          "synthetic_seed"]) if P.synthetic else None
    storage = [P.values(["frame_cache_format", "jpeg_quality"])] if P.frame_cache_format != "raw" else []
    return fingerprint(P.values(["max_frames", "framerate", "slice_framepos"]), image_size_of(P.clip_model),
                       resolved, synthetic, *storage)


def train_fingerprint(frames_fp: str, train: pd.DataFrame) -> str:
    """The training data as the models see it: the frames and each (video, caption) pair, in order."""
    return fingerprint(frames_fp, list(zip(train.clip_id, train.caption)))


def frames_dir(P: Params, frames_fp: str) -> Path:
    return P.exp_dir / "frames" / frames_fp


def clip_source(P: Params) -> Any:
    """The identity of clip_pretrained: a pretrained tag as it is, a local file by path, size and time."""
    pretrained = P.clip_pretrained
    if pretrained and (Path(pretrained).exists() or Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}):
        return file_identity(pretrained)
    return pretrained


def backbone_inputs(P: Params) -> dict:
    """What the demo's backbone pretraining reads."""
    return {"format": MODEL_FORMAT, "clip_model": P.clip_model, "clip_pretrained": clip_source(P),
            "pretrain_steps": P.pretrain_steps, "pretrain_batch_size": P.pretrain_batch_size,
            "pretrain_lr": P.pretrain_lr, "max_words": P.max_words, "synthetic_frame_size": P.synthetic_frame_size,
            "synthetic_seed": P.synthetic_seed}


def backbone_fingerprint(P: Params) -> str:
    """The CLIP weights every model starts from: the pretraining stage's, or the params' own."""
    if P.pretrain_steps > 0:
        return Stage(P.exp_dir / "backbone", backbone_inputs(P)).fingerprint
    return fingerprint(P.clip_model, clip_source(P))


def annotations(P: Params, split: str, videos_dir: str | None) -> pd.DataFrame:
    """One split's rows with a caption (gallery-only videos of the TeachCLIP layout are left out)."""
    table = read_annotations(P.dataset, P.data_root, split, videos_dir, **P.data_options)
    unlabelled = table.caption.isna()
    if unlabelled.any():
        log.info("%s/%s: %d videos without a caption left out", P.dataset, split, int(unlabelled.sum()))
    return table[~unlabelled].reset_index(drop=True)


def pretrain_backbone(P: Params) -> str:
    """The CLIP weights later stages start from: the demo's pretrained backbone (tclib.pretrain, run
    here unless done), or the params' own clip_pretrained when pretrain_steps is 0."""
    if P.pretrain_steps <= 0:
        return P.clip_pretrained
    stage = Stage(P.exp_dir / "backbone", backbone_inputs(P))
    if not stage.done():
        stage.finish(**pretrain_clip(P, image_size_of(P.clip_model), stage.directory))
    return str(stage.directory / "clip.pt")


def train_dataset(P: Params, data: Data) -> PairDataset:
    return PairDataset(list(data.train.caption), list(data.train.clip_id), data.cache, Tokenizer(P.max_words))


def test_set(P: Params, data: Data) -> TestSet:
    """The test split over the frame cache: frames stay on disk and are read a batch at a time."""
    video_ids = list(dict.fromkeys(data.test.clip_id))
    position = {v: i for i, v in enumerate(video_ids)}
    return TestSet(tokens=Tokenizer(P.max_words)(list(data.test.caption)),
                   caption_video=np.array([position[v] for v in data.test.clip_id], dtype=np.int64),
                   frames=data.cache.frames, mask=data.cache.mask, video_ids=video_ids,
                   rows=np.array([data.cache.index_of(v) for v in video_ids], dtype=np.int64))


# -------------------------------------------------------------------------------------- teachers


def _train_config(P: Params, seed: int, epochs: int, lr: float, student: bool = False) -> TrainConfig:
    """The training loop's settings; precision and gradient accumulation apply to students only."""
    return TrainConfig(epochs=epochs, batch_size=P.batch_size, lr=lr, clip_lr_scale=P.clip_lr_scale,
                       afa_lr_scale=P.afa_lr_scale, weight_decay=P.weight_decay,
                       warmup_proportion=P.warmup_proportion, grad_clip=P.grad_clip, seed=seed,
                       num_workers=P.num_workers, device=P.device, precision=P.precision if student else "fp32",
                       accumulation=P.grad_accumulation if student else 1)


def training_inputs(P: Params, epochs: int, lr: float) -> dict:
    """What the training loop reads of the params (not the device nor the loader's workers: they
    change how fast, not what)."""
    return {"epochs": epochs, "lr": lr, "batch_size": P.batch_size, "clip_lr_scale": P.clip_lr_scale,
            "weight_decay": P.weight_decay, "warmup_proportion": P.warmup_proportion, "grad_clip": P.grad_clip,
            "beta": P.beta}


def teacher_stage(P: Params, data: Data, name: str, seed: int) -> Stage:
    """A teacher, loaded from its checkpoint (one for every seed) or trained here (one per seed)."""
    inputs = {"format": MODEL_FORMAT, "teacher": name, "backbone": data.backbone_fingerprint,
              "max_words": P.max_words, "max_frames": P.max_frames, "temporal_layers": P.temporal_layers,
              "mask_padded_frames": P.mask_padded_frames, "options": P.teacher_options.get(name, {})}
    checkpoint = P.teacher_checkpoints.get(name, "")
    if checkpoint:
        inputs["checkpoint"] = file_identity(checkpoint)
    else:
        inputs.update(seed=seed, train_data=data.train_fingerprint,
                      training=training_inputs(P, P.teacher_epochs, P.teacher_lr))
    return Stage(P.exp_dir / "teachers" / name, inputs)


def teacher_features_dir(P: Params, data: Data, name: str, seed: int) -> Path:
    """Where the teacher's feature cache of this training set lives, inside the teacher's folder."""
    key = fingerprint(data.train_fingerprint, TEACHER_FEATURES_FORMAT)
    return teacher_stage(P, data, name, seed).directory / "features" / key


def new_teacher(P: Params, data: Data, name: str) -> Teacher:
    return build_teacher(name, load_clip(P.clip_model, data.clip_pretrained), P.max_words, P.max_frames,
                         P.temporal_layers, mask_padding=P.mask_padded_frames, **P.teacher_options.get(name, {}))


def prepare_teachers(P: Params, data: Data) -> dict[tuple[str, int], Path]:
    """For each teacher and seed: load its checkpoint (teacher_checkpoints) or train it, then (with
    teacher_mode: cached) cache its features on the training set. Returns {(name, seed): directory}."""
    device = resolve_device(P.device)
    dataset = train_dataset(P, data)
    out = {}
    for name in P.teachers:
        for seed in P.seeds:
            stage = teacher_stage(P, data, name, seed)
            checkpoint = P.teacher_checkpoints.get(name, "")
            out[(name, seed)] = stage.directory
            teacher = None
            if not stage.done():
                seed_everything(seed)
                teacher = new_teacher(P, data, name)
                if checkpoint:
                    load_checkpoint(teacher, checkpoint)
                    save_checkpoint(teacher.state_dict(), stage.directory / "run" / "model.pt")
                else:
                    config = _train_config(P, seed, P.teacher_epochs, P.teacher_lr)
                    teacher = train(teacher, dataset, ContrastiveObjective(P.beta), config, stage.directory / "run",
                                    desc=f"{name} seed {seed}")
                stage.finish(checkpoint=checkpoint or "trained here")
            if P.teacher_mode == "cached":
                cache_teacher_features(P, data, name, seed, dataset, teacher, device)
    return out


def teacher_cache_manifest(P: Params, data: Data, name: str, seed: int, dataset: PairDataset) -> dict:
    """What a teacher feature cache must have been computed from, field by field."""
    model = teacher_stage(P, data, name, seed).directory / "run" / "model.pt"
    return {"teacher": name, "checkpoint_sha256": file_sha256(model),
            "clip_model": P.clip_model, "backbone": data.backbone_fingerprint,
            "sampling": {"max_frames": P.max_frames, "framerate": P.framerate, "slice_framepos": P.slice_framepos,
                         "image_size": image_size_of(P.clip_model)},
            "max_words": P.max_words, "mask_padded_frames": P.mask_padded_frames,
            "teacher_options": P.teacher_options.get(name, {}), "dataset": P.dataset,
            "split": P.train_split, "captions_sha256": strings_sha256(dataset.captions),
            "videos_sha256": strings_sha256(dataset.video_ids), "format": TEACHER_FEATURES_FORMAT}


def cache_teacher_features(P: Params, data: Data, name: str, seed: int, dataset: PairDataset,
                           teacher: Teacher | None, device: torch.device) -> Path:
    """The teacher's feature cache of the training set, written unless it is there already."""
    directory = teacher_features_dir(P, data, name, seed)
    manifest = teacher_cache_manifest(P, data, name, seed, dataset)
    if (directory / "manifest.json").is_file():
        read_teacher_features(directory, manifest)  # refuses a cache made for anything else
        return directory
    teacher = teacher or load_teacher(P, data, name, seed)
    write_teacher_features(directory, teacher, dataset.tokens, data.cache.frames, data.cache.mask,
                           sorted(set(dataset.video_index)), P.eval_batch_size, device, manifest)
    return directory


def load_teacher(P: Params, data: Data, name: str, seed: int) -> Teacher:
    teacher = new_teacher(P, data, name)
    load_checkpoint(teacher, teacher_stage(P, data, name, seed).directory / "run" / "model.pt")
    return teacher.eval()


# -------------------------------------------------------------------------------------- students


def student_stage(P: Params, data: Data, run: str, seed: int) -> Stage:
    """A student run for one seed. What it reads depends on the run: a meanP student with frozen
    CLIP towers has nothing to train and reads only the backbone (one model for every seed); the
    temporal head, AFA, and teaching add what they read; a taught student reads its teachers'
    fingerprints."""
    spec = run_spec(run)
    inputs = {"format": MODEL_FORMAT, "temporal": spec["temporal"], "afa": spec["afa"],
              "backbone": data.backbone_fingerprint}
    if spec["temporal"] == "seqTransf":
        inputs["temporal_layers"] = P.temporal_layers
    if spec["afa"]:
        inputs.update(afa_temperature=P.afa_temperature, mask_padded_frames=P.mask_padded_frames)
    if P.clip_lr_scale > 0 or spec["temporal"] != "meanP" or spec["afa"]:  # something to train
        inputs.update(seed=seed, train_data=data.train_fingerprint, max_words=P.max_words,
                      training=training_inputs(P, P.epochs, P.lr))
        if spec["afa"]:
            inputs["training"]["afa_lr_scale"] = P.afa_lr_scale
        # named only when not the default, so that the runs made before these keys keep their folders
        if P.precision != "fp32":
            inputs["training"]["precision"] = P.precision
        if P.grad_accumulation != 1:
            inputs["training"]["grad_accumulation"] = P.grad_accumulation
    if spec["coarse"]:
        used = {"contrastive", "coarse", "fine"} if spec["fine"] else {"contrastive", "coarse"}
        inputs.update(teachers={t: teacher_stage(P, data, t, seed).fingerprint for t in run_teachers(P, run)},
                      teacher_mode=P.teacher_mode, coarse_method=P.coarse_method,
                      loss_weights={k: v for k, v in P.loss_weights.items() if k in used})
        if spec["fine"]:
            inputs["fine_method"] = P.fine_method
    return Stage(P.exp_dir / "students" / run, inputs)


def new_student(P: Params, data: Data, run: str) -> CLIP4Clip:
    spec = run_spec(run)
    return CLIP4Clip(load_clip(P.clip_model, data.clip_pretrained), temporal=spec["temporal"], afa=spec["afa"],
                     temporal_layers=P.temporal_layers, afa_temperature=P.afa_temperature,
                     mask_padding=P.mask_padded_frames)


def student_seeds(P: Params, run: str) -> list[int | None]:
    """The seeds a run has: one model (seed None) when it comes from student_checkpoints."""
    return [None] if run in P.student_checkpoints else list(P.seeds)


def teacher_scores(P: Params, data: Data, names: list[str], seed: int, device: torch.device):
    """The scorer of a TeachCLIP run: cached features or the teachers' forward on every batch."""
    teachers = [load_teacher(P, data, t, seed).to(device) for t in names]
    if P.teacher_mode == "online":
        return OnlineTeacherScores(teachers)
    dataset = train_dataset(P, data)
    features = [read_teacher_features(teacher_features_dir(P, data, t, seed),
                                      teacher_cache_manifest(P, data, t, seed, dataset)) for t in names]
    return CachedTeacherScores(teachers, features)


def train_students(P: Params, data: Data) -> None:
    """Train every run of P.runs for every seed (teachers must be prepared first); runs given in
    student_checkpoints are not trained: their file is evaluated instead."""
    for run in P.runs:
        if run in P.student_checkpoints:
            log.info("%s: evaluated from %s, not trained", run, P.student_checkpoints[run])
            continue
        for seed in P.seeds:
            stage = student_stage(P, data, run, seed)
            if stage.done():
                continue
            if P.gpus > 1:
                launch_student_training(P, run, seed, stage.directory)
            else:
                train_student(P, data, run, seed, stage.directory)
            stage.finish()


def train_student(P: Params, data: Data, run: str, seed: int, directory: Path) -> None:
    """Train one run for one seed into `directory`/run (in each process when launched by torchrun)."""
    spec, names = run_spec(run), run_teachers(P, run)
    device = resolve_device(P.device)
    if names:
        objective = TeachingObjective(teacher_scores(P, data, names, seed, device), P.coarse_method,
                                      P.fine_method, use_fine=spec["fine"], weights=P.loss_weights, beta=P.beta)
    else:
        objective = ContrastiveObjective(P.beta)
    seed_everything(seed)
    student = new_student(P, data, run)
    train(student, train_dataset(P, data), objective, _train_config(P, seed, P.epochs, P.lr, student=True),
          directory / "run", desc=f"{run} seed {seed}")


def launch_student_training(P: Params, run: str, seed: int, directory: Path) -> None:
    """Train one run over P.gpus processes: `torchrun --standalone --nproc_per_node=<gpus> -m
    tclib.train_worker`, its output shown here line by line; an error if a process fails. (Params
    refuse gpus > 1 without teacher_mode: cached.)"""
    directory.mkdir(parents=True, exist_ok=True)
    job = directory / "launch.json"
    write_text(job, json.dumps({"params": dataclasses.asdict(P), "run": run, "seed": seed,
                                "directory": str(directory)}, default=str))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={P.gpus}",
               "-m", "tclib.train_worker", str(job)]
    log.info("%s seed %d: training over %d processes: %s", run, seed, P.gpus, " ".join(command))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
    if process.returncode != 0:
        raise RuntimeError(f"{run} seed {seed}: torchrun exited with code {process.returncode}; its output is above")


def load_student(P: Params, data: Data, run: str, seed: int | None) -> CLIP4Clip:
    """A trained student, or the file student_checkpoints gives for `run` (reference key names accepted)."""
    student = new_student(P, data, run)
    path = P.student_checkpoints.get(run) or student_stage(P, data, run, seed).directory / "run" / "model.pt"
    load_checkpoint(student, path)
    return student.eval()


def stage_plan(P: Params, data: Data) -> dict[str, Path]:
    """Every stage folder this params file's run reads or writes, by a readable key
    ("frames", "backbone", "teachers/xclip/seed0", "teacher-features/xclip/seed0", "students/teachclip/seed0")."""
    plan = {"frames": frames_dir(P, data.frames_fingerprint)}
    if P.pretrain_steps > 0:
        plan["backbone"] = Stage(P.exp_dir / "backbone", backbone_inputs(P)).directory
    for name in P.teachers:
        for seed in P.seeds:
            plan[f"teachers/{name}/seed{seed}"] = teacher_stage(P, data, name, seed).directory
            if P.teacher_mode == "cached":
                plan[f"teacher-features/{name}/seed{seed}"] = teacher_features_dir(P, data, name, seed)
    for run in P.runs:
        if run not in P.student_checkpoints:
            for seed in P.seeds:
                plan[f"students/{run}/seed{seed}"] = student_stage(P, data, run, seed).directory
    return plan


# ------------------------------------------------------------------------------------ evaluation

TABLE_COLUMNS = ["R1", "R5", "R10", "MdR", "MnR", "SumR"]


def evaluate_all(P: Params, data: Data, out_dir: Path | None = None) -> pd.DataFrame:
    """Metrics of every trained model and seed, each model's features extracted once. Writes to
    `out_dir` (default results/<exp>/): metrics.csv (one row per model, seed and inference: "plain",
    and "dsl" when P.dsl), table.md (mean ± std over seeds of text->video R@1/5/10, MdR, MnR, SumR and
    the same for video->text; dual-softmax tables after them, labelled) and ranks.csv (the rank of each
    test caption's own video, per model and seed, plain inference)."""
    out_dir = Path(out_dir or P.exp_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(P.device)
    test = test_set(P, data)
    rows, ranks = [], []
    models = [(run_spec(run)["label"], run, seed, lambda r=run, s=seed: load_student(P, data, r, s))
              for run in P.runs for seed in student_seeds(P, run)]
    models += [(TEACHER_LABELS.get(name, name), name, seed, lambda n=name, s=seed: load_teacher(P, data, n, s))
               for name in P.teachers for seed in P.seeds]
    inferences = INFERENCES if P.dsl else ("plain",)
    for label, run, seed, load in models:
        sim, costs = similarity_matrix(load(), test, P.eval_batch_size, device)
        rows += [{"model": label, "run": run, "seed": seed, "inference": inference,
                  **metrics_of(sim, costs, test, inference)} for inference in inferences]
        ranks.append(pd.DataFrame({"model": label, "seed": seed, "caption": np.arange(len(sim)),
                                   "video_id": [test.video_ids[v] for v in test.caption_video],
                                   "rank": correct_ranks(sim, test.caption_video)}))
    metrics = sort_models(pd.DataFrame(rows), P)
    metrics.to_csv(out_dir / "metrics.csv", index=False)
    tables = [markdown_table(summary_table(metrics[metrics.inference == inference], direction), P, direction,
                             inference) for inference in inferences for direction in DIRECTIONS]
    (out_dir / "table.md").write_text("\n\n".join(tables) + "\n")
    pd.concat(ranks, ignore_index=True).to_csv(out_dir / "ranks.csv", index=False)
    return metrics


def sort_models(table: pd.DataFrame, P: Params) -> pd.DataFrame:
    """Rows in the paper's order: CLIP4Clip baselines, teachers, TeachCLIP students; seeds in order."""
    baselines = [run_spec(r)["label"] for r in P.runs if not run_spec(r)["coarse"]]
    students = [run_spec(r)["label"] for r in P.runs if run_spec(r)["coarse"]]
    teachers = [TEACHER_LABELS.get(t, t) for t in P.teachers]
    table = table.copy()
    table["model"] = pd.Categorical(table["model"], baselines + teachers + students, ordered=True)
    return table.sort_values(["model", "seed", "inference"]).reset_index(drop=True)


def summary_table(metrics: pd.DataFrame, direction: str = "t2v") -> pd.DataFrame:
    """mean ± std over seeds of one direction's columns ("t2v" or "v2t"), one row per model."""
    columns = [f"{direction}_{c}" for c in TABLE_COLUMNS]
    grouped = metrics.groupby("model", observed=True)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=0).fillna(0.0)
    table = pd.DataFrame(index=mean.index)
    for column, name in zip(columns, ["R@1", "R@5", "R@10", "MdR", "MnR", "SumR"]):
        table[name] = [f"{m:.1f} ± {s:.1f}" for m, s in zip(mean[column], std[column])]
    table["seeds"] = grouped.size().values
    return table.reset_index()


DIRECTIONS = {"t2v": "Text-to-video", "v2t": "Video-to-text"}


def markdown_table(table: pd.DataFrame, P: Params, direction: str = "t2v", inference: str = "plain") -> str:
    how = (" **with dual-softmax inference (DSL)**: each score weighted by a softmax over all test queries, "
           "not comparable with numbers without it" if inference == "dsl" else "")
    header = (f"{DIRECTIONS[direction]} retrieval on {P.exp} ({P.clip_model}){how}, mean ± std over seeds "
              f"{', '.join(map(str, P.seeds))}.\n\n")
    return header + markdown_rows(table)


def markdown_rows(table: pd.DataFrame) -> str:
    """`table` as a Markdown table: its columns as the header, one line per row."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- attention


def frame_weights(P: Params, data: Data, test: TestSet, device: torch.device,
                  captions: np.ndarray | None = None) -> dict[tuple[str, int | None], np.ndarray]:
    """{(label, seed): (N, F) weights} for the test captions `captions` (default all): each AFA
    student's aggregation weights over the caption's video and each teacher's frame-text relevance,
    computed a batch at a time."""
    captions = np.arange(len(test.tokens)) if captions is None else np.asarray(captions)
    videos, back = np.unique(test.caption_video[captions], return_inverse=True)
    weights: dict[tuple[str, int | None], np.ndarray] = {}
    for run in [r for r in P.runs if run_spec(r)["afa"]]:
        for seed in student_seeds(P, run):
            per_video = afa_weights(load_student(P, data, run, seed), test, P.eval_batch_size, device, videos)
            weights[(run_spec(run)["label"] + " AFA", seed)] = per_video[back]
    for name in P.teachers:
        for seed in P.seeds:
            relevance = teacher_relevance(load_teacher(P, data, name, seed), test, P.eval_batch_size, device, captions)
            weights[(TEACHER_LABELS.get(name, name) + " relevance", seed)] = relevance
    return weights


def first_caption_per_video(data: Data) -> list[int]:
    """The position in data.test of each test video's first caption, in the order of the videos."""
    first: dict[str, int] = {}
    for i, video_id in enumerate(data.test.clip_id):
        first.setdefault(video_id, i)
    return list(first.values())


def plot_captions(P: Params, data: Data) -> list[int]:
    """The test captions attention.png shows: the first caption of each of plot_video_ids (an
    unknown id is an error naming the known ones' first few), else of the first plot_videos videos."""
    ids = list(data.test.clip_id)
    if P.plot_video_ids:
        unknown = [v for v in P.plot_video_ids if v not in ids]
        if unknown:
            raise ParamsError(f"plot_video_ids: {unknown} are not test videos of {P.exp} "
                              f"(test videos: {', '.join(list(dict.fromkeys(ids))[:5])}, ...)")
        return [ids.index(v) for v in P.plot_video_ids]
    return first_caption_per_video(data)[:P.plot_videos]


def attention_report(P: Params, data: Data, out_dir: Path | None = None) -> tuple[pd.DataFrame, Figure]:
    """AFA weights and teacher relevance against the ground truth. Writes to `out_dir` (default
    results/<exp>/): attention_correlation.csv (`attention_statistics` per weights, mean and std
    over seeds; empty without ground truth) and attention.png (heatmaps of the plot_captions for
    the first seed). Returns the statistics and the figure."""
    out_dir = Path(out_dir or P.exp_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(P.device)
    test = test_set(P, data)
    truth, kinds = ground_truth(P)
    weights = frame_weights(P, data, test, device)
    keys = [(test.video_ids[v], c) for v, c in zip(test.caption_video, data.test.caption)]
    stats = pd.DataFrame()
    if truth:
        gt = np.stack([truth[k] for k in keys])
        frame_kinds = np.stack([kinds[video_id] for video_id, _ in keys])
        stats = pd.DataFrame([{"weights": label, "seed": seed, **attention_statistics(w, gt, frame_kinds)}
                              for (label, seed), w in weights.items()])
        grouped = stats.drop(columns="seed").groupby("weights", sort=False)
        stats = grouped.mean().join(grouped["pearson_with_ground_truth"].std(ddof=0).rename("pearson_std"))
        stats = stats.reset_index()
    stats.to_csv(out_dir / "attention_correlation.csv", index=False)

    seed = P.seeds[0]
    panels = []
    for i in plot_captions(P, data):
        rows = {label: w[i] for (label, s), w in weights.items() if s in (seed, None)}
        if truth:
            rows["ground truth"] = truth[keys[i]]
        frames, mask = data.cache.get(keys[i][0])
        panels.append({"frames": frames, "mask": mask, "caption": keys[i][1], "video_id": keys[i][0], "rows": rows})
    figure = attention_figure(panels, seed=seed)
    figure.savefig(out_dir / "attention.png", dpi=110, bbox_inches="tight")
    return stats, figure
