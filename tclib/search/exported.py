"""A trained student as a folder anyone can use, in the layout of open_clip's `hf-hub:` models and the
Hugging Face Hub:

    model.safetensors   every weight of the student (CLIP backbone, temporal head, AFA): no pickle
    config.json         what builds it and how it reads videos and text: the backbone (its open_clip name
                        and config), the head, AFA, the frame sampling, the words and tokenizer, the
                        logit scale, and what trained it (experiment, run, seed, data set, teachers)
    README.md           a model card: the data set, the teachers, the test metrics of that seed
                        (metrics.csv), the params that trained it, tclib's version

`tclib export student OUT --params P [--run R] [--seed S]` writes it; `tclib index --student DIR` (or
a hub id, `hf-hub:owner/name`, where `huggingface_hub` is installed and the network allows) indexes
with it, needing nothing of the experiment that trained it: no params file, no data set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .. import __version__
from ..data.frames import CLIP_MEAN, CLIP_STD
from ..errors import CheckpointError, ParamsError
from ..experiment.report import markdown_rows
from ..files import atomic_path, write_text
from ..params import Params
from ..project import relative_to_root
from .model import StudentSpec, spec_weights

CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
FORMAT = 1
HUB_PREFIX = "hf-hub:"
METRIC_COLUMNS = ["t2v_R1", "t2v_R5", "t2v_R10", "t2v_MdR", "t2v_MnR", "v2t_R1", "v2t_R5", "v2t_R10", "v2t_MdR",
                  "v2t_MnR"]


def export_student(P: Params, out: str | Path, run: str | None = None, seed: int | None = None) -> Path:
    """Write the student `run` of seed `seed` of experiment P (see tclib.search.model.student_spec) to
    the folder `out`: its weights, its config and its model card. Returns `out`."""
    from safetensors.torch import save_file

    from .model import student_spec

    spec = student_spec(P, run, seed)
    student = spec.load()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous() for key, value in student.state_dict().items()}
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "library": "tclib", "architecture": "CLIP4Clip"})
    config = student_config(P, spec, float(student.clip.logit_scale.detach().exp()))
    write_text(out / CONFIG, json.dumps(config, indent=1) + "\n")
    write_text(out / CARD, model_card(P, config))
    return out


def student_config(P: Params, spec: StudentSpec, logit_scale: float) -> dict[str, Any]:
    """config.json: what builds the student, how it reads videos and text, and what trained it."""
    import open_clip

    from ..experiment.runs import TEACHER_NAMES, parse_run

    run = parse_run(spec.run)
    return {
        "library": "tclib", "tclib_version": __version__, "format": FORMAT, "architecture": "CLIP4Clip",
        "backbone": {"open_clip_model": spec.clip_model, "open_clip_config": open_clip.get_model_config(spec.clip_model),
                     "initialized_from": Path(spec.clip_pretrained).name if os.sep in spec.clip_pretrained
                     else spec.clip_pretrained},
        "head": {"temporal": spec.temporal, "temporal_layers": spec.temporal_layers, "mask_padding": spec.mask_padding},
        "afa": {"enabled": spec.afa, "temperature": spec.afa_temperature},
        "frame_sampling": {**spec.sampling, "mean": list(CLIP_MEAN), "std": list(CLIP_STD),
                           "resize": "bicubic, short side to image_size, center crop"},
        "text": {"max_words": spec.max_words,
                 "tokenizer": "open_clip SimpleTokenizer (CLIP BPE): [SOT] + tokens[:max_words - 2] + [EOT], "
                              "zero padded"},
        "logit_scale": logit_scale,
        "trained": {"exp": spec.exp, "run": spec.run, "label": run.label, "seed": spec.seed, "dataset": P.dataset,
                    "teachers": [TEACHER_NAMES.get(t, t) for t in run.teachers or ()]},
    }


def model_card(P: Params, config: dict[str, Any]) -> str:
    """README.md: front matter the Hub reads, then what the student is, its metrics, how to use it and
    the params that trained it."""
    trained = config["trained"]
    sampling = config["frame_sampling"]
    metrics = seed_metrics(P, trained["run"], trained["seed"])
    front = {"library_name": "tclib", "tags": ["text-to-video-retrieval", "clip4clip", "teachclip", "open_clip"],
             "datasets": [trained["dataset"]]}
    teachers = ", ".join(trained["teachers"]) or "none (trained on captions alone)"
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
             f"# {trained['label']}, seed {trained['seed']} ({trained['exp']})", "",
             f"A text-to-video retrieval student: one vector per video, made by a CLIP "
             f"`{config['backbone']['open_clip_model']}` (initialized from "
             f"`{config['backbone']['initialized_from'] or 'random weights'}`), a `{config['head']['temporal']}` "
             f"temporal head and {'AFA attention over the frames' if config['afa']['enabled'] else 'mean pooling'}. "
             f"Trained on {trained['dataset']} (experiment `{trained['exp']}`, run `{trained['run']}`); "
             f"teachers: {teachers}.", "",
             f"Videos: at most {sampling['max_frames']} frames, {sampling['framerate']} a second, "
             f"{sampling['image_size']} px square; text: up to {config['text']['max_words']} tokens.", "",
             "## Test metrics", "", f"Text-to-video (t2v) and video-to-text (v2t) retrieval on the test split "
             f"`{P.test_split}` of {trained['dataset']}, as 04_evaluate reports them:", "", metrics_table(metrics), "",
             "## Use", "", "```bash", "tclib index my-index --videos ~/videos --student THIS_FOLDER",
             'tclib search my-index "a person cooking in a kitchen"', "```", "",
             "## Trained with", "", f"tclib {config['tclib_version']}; the params of its experiment:", "",
             "```yaml", yaml.safe_dump(P.to_dict(), sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)


def seed_metrics(P: Params, run: str, seed: int | None) -> pd.DataFrame | None:
    """The rows of results/<exp>/metrics.csv of this run and seed (None before 04 has evaluated it)."""
    path = P.exp_dir / "metrics.csv"
    if seed is None or not path.is_file():
        return None
    table = pd.read_csv(path)
    rows = table[(table.run == run) & (table.seed == seed)]
    return None if rows.empty else rows


def metrics_table(rows: pd.DataFrame | None) -> str:
    if rows is None:
        return "Not evaluated yet (04_evaluate writes results/<exp>/metrics.csv)."
    columns = ["inference", *[c for c in METRIC_COLUMNS if c in rows.columns]]
    return markdown_rows(pd.DataFrame({c: [f"{v:.1f}" if isinstance(v, float) else str(v) for v in rows[c]]
                                       for c in columns}))


# ------------------------------------------------------------------------------------------ loading


def student_folder(name: str | Path) -> Path:
    """The local folder of an exported student: `name` itself, or a hub id `hf-hub:owner/name`
    downloaded (once) by huggingface_hub."""
    name = str(name)
    if name.startswith(HUB_PREFIX):
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise ParamsError(f"{name}: a hub id needs huggingface_hub (pip install 'tclib[hub]'), or give a "
                              f"folder") from None
        return Path(snapshot_download(name.removeprefix(HUB_PREFIX)))
    folder = Path(name).expanduser()
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise ParamsError(f"{folder} is not an exported student: it needs {CONFIG} and {WEIGHTS} "
                          f"(tclib export student writes them)")
    return folder


def exported_spec(name: str | Path) -> StudentSpec:
    """The StudentSpec of an exported student (a folder or a hub id): what `tclib index --student` encodes
    with and the index records."""
    folder = student_folder(name)
    config_path = folder / CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("format") != FORMAT or config.get("architecture") != "CLIP4Clip":
            raise ValueError(f"format {config.get('format')!r} of {config.get('architecture')!r}; this tclib reads "
                             f"format {FORMAT} of CLIP4Clip")
        sampling = {k: config["frame_sampling"][k] for k in ("max_frames", "image_size", "framerate", "slice_framepos")}
        checkpoint = relative_to_root(folder / WEIGHTS)
        return StudentSpec(exp=config["trained"]["exp"], run=config["trained"]["run"], seed=config["trained"]["seed"],
                           checkpoint=checkpoint, clip_model=config["backbone"]["open_clip_model"], clip_pretrained="",
                           temporal=config["head"]["temporal"], afa=config["afa"]["enabled"],
                           temporal_layers=config["head"]["temporal_layers"],
                           afa_temperature=config["afa"]["temperature"], mask_padding=config["head"]["mask_padding"],
                           max_words=config["text"]["max_words"], sampling=sampling,
                           weights=spec_weights(checkpoint, ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CheckpointError(f"{config_path}: not the config of an exported student: {what}") from exc

