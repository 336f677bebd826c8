"""tclib.search.exported: a trained student exported as model.safetensors, config.json and a model card
indexes the demo's test split with exactly the ranks of the student it came from, and indexes a
folder of videos in a project that holds no data set and no params file."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from safetensors.torch import save_file

import tclib
from tclib.cli import main
from tclib.errors import CheckpointError, ParamsError
from tclib.experiment.data import split_annotations
from tclib.experiment.runs import parse_run
from tclib.models.checkpoint import read_checkpoint
from tclib.project import resolve_path
from tclib.search.build import IndexJob, build_index
from tclib.search.exported import exported_spec
from tclib.search.model import ModelMismatch, student_spec
from tclib.search.query import Index
from tclib.search.store import ShardVectors
from tclib.search.units import collection_of

RUN, SEED = "teachclip:xclip", 1


@pytest.fixture(scope="module")
def params_file(demo_run, tmp_path_factory):
    """The small demo's params as a file (its paths absolute)."""
    path = tmp_path_factory.mktemp("params") / "small.yaml"
    path.write_text(yaml.safe_dump(demo_run[1].to_dict()))
    return path


@pytest.fixture(scope="module")
def exported(params_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("shared") / "student"
    assert main(["export", "student", str(out), "--params", str(params_file), "--run", RUN, "--seed", str(SEED)]) == 0
    return out


def test_the_folder_holds_the_weights_without_pickle_the_config_and_a_model_card(demo_run, exported):
    exp_dir, P = demo_run
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    header = (exported / "model.safetensors").read_bytes()[:9]
    assert header[8:9] == b"{"  # safetensors: an 8-byte length, then its JSON header; a pickle starts with 0x80
    weights = read_checkpoint(exported / "model.safetensors")
    original = read_checkpoint(resolve_path(student_spec(P, RUN, SEED).checkpoint))
    original = original.get("model", original)
    assert set(weights) == set(original) and all(np.array_equal(weights[k], original[k]) for k in weights)
    config = json.loads((exported / "config.json").read_text())
    assert config["backbone"]["open_clip_model"] == P.clip_model == "tclib-tiny"
    assert config["backbone"]["open_clip_config"]["embed_dim"] == weights["clip.text_projection"].shape[1]
    assert config["head"] == {"temporal": "seqTransf", "temporal_layers": P.temporal_layers,
                              "mask_padding": P.mask_padded_frames}
    assert config["afa"]["enabled"] and config["text"]["max_words"] == P.max_words
    assert config["frame_sampling"]["max_frames"] == P.max_frames
    assert config["logit_scale"] == pytest.approx(float(weights["clip.logit_scale"].exp()), rel=1e-6)
    assert config["trained"] == {"exp": "small", "run": RUN, "label": parse_run(RUN).label, "seed": SEED,
                                 "dataset": P.dataset, "teachers": ["X-CLIP"]}
    card = (exported / "README.md").read_text()
    metrics = pd.read_csv(exp_dir / "metrics.csv")
    row = metrics[(metrics.run == RUN) & (metrics.seed == SEED)].iloc[0]
    assert card.startswith("---\nlibrary_name: tclib\n") and f"| {row.t2v_R1:.1f} | {row.t2v_R5:.1f} |" in card
    assert "X-CLIP" in card and f"exp: {P.exp}" in card and f"tclib {tclib.__version__}" in card


def test_an_exported_student_indexes_the_test_split_with_the_ranks_of_its_own(demo_run, params_file, exported,
                                                                             tmp_path):
    exp_dir, P = demo_run
    out = tmp_path / "index"
    assert main(["index", str(out), "--split", "test", "--params", str(params_file), "--student",
                 str(exported), "--workers", "1"]) == 0
    index = Index(out)
    assert index.spec.checkpoint.endswith("model.safetensors") and index.spec.run == RUN
    test = split_annotations(P, P.test_split)
    k = len(index)
    results = index.search(list(test.caption), k=k)
    ours = [int(results.iloc[i * k:(i + 1) * k].query("key == @clip")["rank"].item())
            for i, clip in enumerate(test.clip_id)]
    ranks = pd.read_csv(exp_dir / "ranks.csv")
    evaluated = ranks[(ranks.model == parse_run(RUN).label) & (ranks.seed == SEED)].sort_values("caption")
    assert ours == evaluated["rank"].tolist()


def test_a_project_without_data_or_params_indexes_and_searches_with_it(demo_run, exported, synthetic_set, tmp_path):
    _, P = demo_run
    project = tmp_path / "elsewhere"
    (project / "videos").mkdir(parents=True)
    for i in range(3):
        shutil.copy(synthetic_set / "videos" / f"video{i}.mp4", project / "videos")
    shutil.copytree(exported, project / "student")
    env = {**{k: v for k, v in os.environ.items() if k != "TCLIB_ROOT"}, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tclib.cli", "index", "idx", "--videos", "videos", "--student",
                           "student", "--workers", "1"], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not (project / "params").exists() and not (project / "data").exists() and not (project / "results").exists()
    found = subprocess.run([sys.executable, "-m", "tclib.cli", "search", "idx", "a red circle", "-k", "3", "--json"],
                           cwd=project, env=env, capture_output=True, text=True)
    assert found.returncode == 0 and len(found.stdout.splitlines()) == 3, found.stderr
    # the same vectors as the student it came from encodes for the same videos
    build_index(IndexJob(tmp_path / "original", collection_of(videos=str(project / "videos")), student_spec(P, RUN, SEED),
                workers=1))
    mine, theirs = Index(project / "idx"), Index(tmp_path / "original")
    assert list(mine.units.key) == list(theirs.units.key)
    assert np.array_equal(ShardVectors(project / "idx", mine.units).take(np.arange(3)),
                          ShardVectors(tmp_path / "original", theirs.units).take(np.arange(3)))
    weights = read_checkpoint(project / "student" / "model.safetensors")  # the student altered afterwards
    weights["clip.logit_scale"] = weights["clip.logit_scale"] + 1
    save_file(weights, str(project / "student" / "model.safetensors"))
    with pytest.raises(ModelMismatch, match=r"the student's weights changed since the index was made: "
                                            r".*student/model.safetensors"):
        Index(project / "idx")


def test_what_is_not_an_exported_student_is_refused_naming_the_file(exported, tmp_path, capsys):
    with pytest.raises(ParamsError, match="is not an exported student: it needs config.json and model.safetensors"):
        exported_spec(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    config = json.loads((broken / "config.json").read_text())
    del config["afa"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"broken/config.json: not the config of an exported student: "
                                              r"missing field 'afa'"):
        exported_spec(broken)
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(CheckpointError, match=r"model.safetensors: cannot be read as safetensors"):
        read_checkpoint(broken / "model.safetensors")
    assert main(["index", str(tmp_path / "i"), "--videos", str(tmp_path), "--student", str(exported), "--run",
                 RUN]) == 2
    assert "--run and --seed pick a student of --params" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "i"), "--videos", str(tmp_path)]) == 2
    assert "name the model: --params P" in capsys.readouterr().err
