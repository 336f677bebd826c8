"""The memory estimate against the measured peak of real training steps, the pre-flight verdict, and
`tclib memory`. Measured peaks are computed here, on this CPU, beside the estimate: no number is typed in."""

import functools
import json

import open_clip
import pytest

from tclib import preflight
from tclib.cli import main
from tclib.memory import (
    GiB,
    TrainingSetup,
    clip_shape,
    estimate_params_memory,
    estimate_training_memory,
    measure_student_step,
    memory_problems,
    parse_bytes,
    student_head_params,
    usable_bytes,
)
from tclib.models import CLIP4Clip, load_clip
from tclib.params import Params


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory) -> str:
    """tclib-tiny with a 1,000-token vocabulary and 64-pixel frames, so that activations, not the token
    embedding, make the peak (registered with open_clip as 'tclib-tiny-vocab1k')."""
    from tclib.models.backbone import CONFIG_DIR

    config = json.loads((CONFIG_DIR / "tclib-tiny.json").read_text())
    config["text_cfg"]["vocab_size"] = 1000
    config["vision_cfg"]["image_size"] = 64
    path = tmp_path_factory.mktemp("configs") / "tclib-tiny-vocab1k.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return "tclib-tiny-vocab1k"


@functools.cache
def measured_peak(name: str, videos: int, frames: int, words: int, precision: str, checkpointing: bool) -> int:
    """The peak of a student's training step on the CPU (tclib.memory.measure_student_step), once per shape."""
    return measure_student_step(name, videos, frames, words, precision, checkpointing)


MODES = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]
SMALL_VOCAB = ("small-vocab", 8, 4, 16)  # activations make the peak: every mode
# The tiny configs' peak is the optimizer step (a 49,408-token embedding): two modes each.
CASES = ([(SMALL_VOCAB, *mode) for mode in MODES]
         + [(shape, *mode) for shape in [("tclib-tiny", 16, 4, 16), ("tclib-tiny-224", 2, 4, 16)]
            for mode in [MODES[0], MODES[3]]])


@pytest.mark.parametrize("shape,precision,checkpointing", CASES,
                         ids=[f"{s[0]}-{s[1]}x{s[2]}-{p}{'-ckpt' if c else ''}" for s, p, c in CASES])
def test_estimate_within_a_quarter_of_the_measured_peak(shape, precision, checkpointing, small_vocab):
    name, videos, frames, words = shape
    name = small_vocab if name == "small-vocab" else name
    measured = measured_peak(name, videos, frames, words, precision, checkpointing)
    estimate = estimate_training_memory(name, videos, frames, words, precision=precision,
                                        grad_checkpointing=checkpointing, foreach_optimizer=False)
    assert 0.75 * measured <= estimate.peak <= 1.25 * measured, (measured, estimate.rows())


def test_checkpointing_and_bf16_lower_the_measured_peak_where_activations_make_it(small_vocab):
    _, videos, frames, words = SMALL_VOCAB
    peak = {mode: measured_peak(small_vocab, videos, frames, words, *mode) for mode in MODES}
    assert peak["fp32", True] < 0.85 * peak["fp32", False] and peak["bf16", False] < 0.85 * peak["fp32", False]
    assert peak["bf16", True] < peak["bf16", False]


@pytest.mark.parametrize("name", ["tclib-tiny", "tclib-tiny-224"])
def test_parameter_count_is_the_models(name):
    student = CLIP4Clip(load_clip(name, ""), temporal="seqTransf", afa=True, temporal_layers=3)
    setup = TrainingSetup(name, 1, 4, 16, temporal_layers=3)
    counted = clip_shape(name).params() + student_head_params(clip_shape(name), setup)
    assert counted == sum(p.numel() for p in student.parameters())


def test_accumulation_gpus_and_teachers_change_the_estimate_as_they_should():
    base = dict(micro_batch=32, frames=12, words=32, precision="bf16")
    plain = estimate_training_memory("ViT-B-16", **base)
    assert estimate_training_memory("ViT-B-16", **base, grad_checkpointing=True).image_tower < plain.image_tower / 5
    accumulated = estimate_training_memory("ViT-B-16", **base, gpu_batch=128)
    assert accumulated.pre_encoding > 0 and accumulated.image_tower == plain.image_tower
    assert estimate_training_memory("ViT-B-16", **base, gpus=2).gradients == 2 * plain.gradients  # DDP's buckets
    cached = estimate_training_memory("ViT-B-16", **base, teachers=("xclip", "ts2net"))
    online = estimate_training_memory("ViT-B-16", **base, teachers=("xclip", "ts2net"), teacher_mode="online")
    assert 0 < cached.teachers < online.teachers and online.teachers > 2 * plain.weights


def params(**values) -> Params:
    return Params.from_mapping({"clip_model": "ViT-B-16", "clip_pretrained": "", "batch_size": 128,
                                "max_frames": 12, "precision": "bf16", **values})


def test_verdict_names_what_fits_computed_with_the_estimate():
    P = params()
    need = estimate_params_memory(P).peak
    assert memory_problems(P, gpu_bytes=need + 2 * GiB) == []
    gpu = need  # the CUDA context's margin makes it too small
    [line] = memory_problems(P, gpu_bytes=gpu)
    assert line.startswith("params key 'batch_size': training needs ~") and "\n" not in line
    assert "grad_checkpointing: true" in line and "gpus: 2" in line and "grad_accumulation: 2" in line
    for changes in ({"grad_checkpointing": True}, {"gpus": 2}, {"grad_accumulation": 2}):
        assert estimate_params_memory(P, **changes).peak <= usable_bytes(gpu)
        assert memory_problems(params(**changes), gpu_bytes=gpu) == []
    assert memory_problems(P) == []  # device auto on a machine without CUDA: no GPU to check


def test_worst_run_decides():
    taught = estimate_params_memory(params(runs=["teachclip"], teacher_mode="online")).peak
    assert estimate_params_memory(params(runs=["clip4clip-meanP", "teachclip"], teacher_mode="online")).peak == taught
    assert estimate_params_memory(params(runs=["clip4clip-meanP"])).peak < taught


def test_preflight_reports_memory_on_a_gpu(monkeypatch):
    import tclib.memory.planning

    P = params(synthetic=True)
    monkeypatch.setattr(tclib.memory.planning, "gpu_memory", lambda params: 40 * GiB)
    lines = [line for line in preflight.problems(P, source="exp.yaml") if "training needs" in line]
    assert len(lines) == 1 and lines[0].startswith("exp.yaml: params key 'batch_size': training needs")


def test_parse_bytes():
    assert parse_bytes("80GB") == parse_bytes("80 GiB") == 80 * GiB
    assert parse_bytes("81920MB") == 80 * GiB and parse_bytes("1e9") == 10**9
    with pytest.raises(Exception, match="not a memory size"):
        parse_bytes("eighty")


def test_cli_prints_the_table_and_the_verdict(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text("clip_model: ViT-B-16\nclip_pretrained: ''\nbatch_size: 128\nmax_frames: 12\nprecision: bf16\n"
                    f"data_root: {tmp_path / 'nowhere'}\n")
    assert main(["memory", str(path), "--gpu-memory", "80GB"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any(line.split()[:3] == ["activations:", "image", "tower"] for line in out)
    assert out[-1].startswith("training needs ~") and "grad_checkpointing: true" in out[-1]
    assert main(["memory", str(path), "--gpu-memory", "200GB"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("fits")
