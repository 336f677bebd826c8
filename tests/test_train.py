"""The training loop: schedule, parameter groups, checkpoints and resuming."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from tclib.models import CLIP4Clip, load_clip
from tclib.train import TrainConfig, param_groups, train, warmup_cosine


def test_warmup_cosine_by_hand():
    # 10 steps, 10% warm-up: step 0 -> 0; from step 1 (progress 0.1) on: 0.5 * (1 + cos(pi * progress))
    assert warmup_cosine(0, 10, 0.1) == 0.0
    assert warmup_cosine(1, 10, 0.1) == pytest.approx(0.5 * (1 + math.cos(0.1 * math.pi)))  # 0.975528
    assert warmup_cosine(5, 10, 0.1) == pytest.approx(0.5)
    assert warmup_cosine(1, 20, 0.1) == pytest.approx(0.5)  # progress 0.05 of a 0.1 warm-up


def test_param_groups_learning_rates():
    student = CLIP4Clip(load_clip("tclib-tiny"), temporal="seqTransf", afa=True, temporal_layers=1)
    config = TrainConfig(epochs=1, batch_size=2, lr=1e-4, clip_lr_scale=1e-3, afa_lr_scale=10.0)
    groups = param_groups(student, config)
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert by_param[id(student.clip.visual.conv1.weight)]["lr"] == pytest.approx(1e-7)
    assert by_param[id(student.afa.fc1.weight)]["lr"] == pytest.approx(1e-3)
    assert by_param[id(student.temporal.frame_position_embeddings.weight)]["lr"] == pytest.approx(1e-4)
    assert by_param[id(student.afa.fc1.bias)]["weight_decay"] == 0.0
    assert by_param[id(student.afa.fc1.weight)]["weight_decay"] == 0.2
    assert sum(len(g["params"]) for g in groups) == len(list(student.parameters()))


class Points(Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(24, 3, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def mse(model, batch):
    return ((model(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean(), {}


def fresh_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 1)


CONFIG = TrainConfig(epochs=3, batch_size=8, lr=0.3, seed=0, device="cpu", warmup_proportion=0.0)


def test_training_reduces_loss_and_writes_model(tmp_path):
    model = fresh_model()
    before = mse(model, Points()[:])[0].item()
    train(model, Points(), mse, CONFIG, tmp_path)
    assert mse(model, Points()[:])[0].item() < before / 2
    assert (tmp_path / "model.pt").is_file() and not (tmp_path / "last.pt").exists()
    assert len(__import__("json").loads((tmp_path / "history.json").read_text())["epoch_loss"]) == 3


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight = train(fresh_model(), Points(), mse, CONFIG, tmp_path / "straight")

    calls = {"n": 0}

    def interrupted(model, batch):
        calls["n"] += 1
        if calls["n"] == 5:  # 3 batches per epoch: stops in the second epoch
            raise KeyboardInterrupt
        return mse(model, batch)

    with pytest.raises(KeyboardInterrupt):
        train(fresh_model(), Points(), interrupted, CONFIG, tmp_path / "resumed")
    assert (tmp_path / "resumed" / "last.pt").is_file()
    resumed = train(fresh_model(), Points(), mse, CONFIG, tmp_path / "resumed")
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b)


def test_finished_run_is_loaded_not_retrained(tmp_path):
    trained = train(fresh_model(), Points(), mse, CONFIG, tmp_path)

    def fail(model, batch):
        raise AssertionError("training ran again")

    again = train(fresh_model(), Points(), fail, CONFIG, tmp_path)
    assert torch.equal(again.weight, trained.weight)


def test_zero_clip_lr_freezes_the_towers(tmp_path):
    student = CLIP4Clip(load_clip("tclib-tiny"), temporal="meanP", afa=True)
    groups = param_groups(student, TrainConfig(epochs=1, batch_size=2, lr=1e-4, clip_lr_scale=0.0))
    assert not student.clip.visual.conv1.weight.requires_grad
    assert sum(len(g["params"]) for g in groups) == 4  # AFA's fc1 and fc2, weights and biases


def test_nothing_to_train_saves_the_model_as_is(tmp_path):
    student = CLIP4Clip(load_clip("tclib-tiny"), temporal="meanP")

    def fail(model, batch):
        raise AssertionError("no step should run")

    config = TrainConfig(epochs=2, batch_size=2, lr=1e-4, clip_lr_scale=0.0, device="cpu")
    train(student, Points(), fail, config, tmp_path)
    assert (tmp_path / "model.pt").is_file()


def test_bf16_autocast_trains_with_fp32_weights_and_a_loss_near_fp32s(tmp_path):
    import dataclasses

    def linear_loss(model, batch):  # a matrix product, which autocast runs in bfloat16
        prediction = model(batch["x"]).squeeze(-1)
        return ((prediction.float() - batch["y"]) ** 2).mean(), {"dtype": torch.tensor(prediction.dtype == torch.bfloat16)}

    seen = []

    def recording(model, batch):
        loss, parts = linear_loss(model, batch)
        seen.append(bool(parts["dtype"]))
        return loss, parts

    fp32 = train(fresh_model(), Points(), linear_loss, CONFIG, tmp_path / "fp32")
    bf16 = train(fresh_model(), Points(), recording, dataclasses.replace(CONFIG, precision="bf16"), tmp_path / "bf16")
    assert seen and all(seen)  # the forward ran in bfloat16
    assert bf16.weight.dtype == torch.float32  # the weights and the optimizer stay fp32
    loss32, loss16 = (mse(m, Points()[:])[0].item() for m in (fp32, bf16))
    assert abs(loss16 - loss32) < 0.05 * loss32 + 1e-2
    assert not torch.equal(fp32.weight, bf16.weight)  # bfloat16 rounding did change the run


def test_gradient_accumulation_needs_an_objective_that_computes_the_losses_from_outputs(tmp_path):
    import dataclasses

    with pytest.raises(TypeError, match="loss\\(output, batch, model\\)"):
        train(fresh_model(), Points(), mse, dataclasses.replace(CONFIG, grad_accumulation=2), tmp_path)


HOST_READS = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")


@pytest.fixture
def host_reads(monkeypatch):
    """Counts the calls of the tensor methods that read a value back to the host."""
    counts = {name: 0 for name in HOST_READS}
    for name in HOST_READS:
        def counting(self, *args, __name=name, __method=getattr(torch.Tensor, name), **kwargs):  # noqa: B008 (bound per name)
            counts[__name] += 1
            return __method(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    return counts


@pytest.fixture(scope="module")
def teaching_batch(tmp_path_factory):
    """A student, a TeachCLIP objective over an X-CLIP feature cache, and a batch carrying the cache's
    rows as the training loader reads them."""
    from tclib.models import Tokenizer, build_teacher
    from tclib.scoring import CachedTeacherScores, write_teacher_features
    from tclib.teaching import TeachingObjective

    torch.manual_seed(0)
    teacher = build_teacher("xclip", load_clip("tclib-tiny"), max_words=16, max_frames=3, temporal_layers=1).eval()
    tokens = Tokenizer(16)(["a red circle", "a blue square", "a white cross", "a green star"])
    frames = torch.randint(0, 255, (4, 3, 3, 32, 32), dtype=torch.uint8)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
    features = write_teacher_features(tmp_path_factory.mktemp("xclip") / "cache", teacher, tokens, frames.numpy(), mask.numpy(),
                                      [0, 1, 2, 3], 4, torch.device("cpu"), {"teacher": "xclip"})
    objective = TeachingObjective(CachedTeacherScores([teacher], [features]), "pear", "ce", use_fine=True)
    batch = {"tokens": tokens, "frames": frames, "frame_mask": mask, "caption_index": torch.arange(4),
             "video_index": torch.tensor([0, 1, 2, 3])}
    return objective, {**batch, **objective.loader_extras(batch)}


@pytest.mark.parametrize("accumulation,precision", [(1, "fp32"), (2, "bf16")])
def test_a_training_step_reads_nothing_back_to_the_host(teaching_batch, host_reads, accumulation, precision):
    from tclib.train import training_step

    objective, batch = teaching_batch
    student = CLIP4Clip(load_clip("tclib-tiny"), temporal="seqTransf", afa=True, temporal_layers=1)
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-4, precision=precision, grad_accumulation=accumulation)
    # the fused AdamW of a GPU (the CPU's default one reads its step counters, kept on the host, as numbers)
    optimizer = torch.optim.AdamW(param_groups(student, config), betas=(0.9, 0.98), eps=1e-6, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, 10, 0.1))
    for name in HOST_READS:
        host_reads[name] = 0
    losses = [training_step(student, batch, objective, optimizer, scheduler, config, torch.device("cpu"))[0]
              for _ in range(3)]
    assert host_reads == {name: 0 for name in HOST_READS}
    assert all(torch.isfinite(loss) for loss in losses)


def test_the_loop_reads_the_losses_back_every_log_every_steps(tmp_path, monkeypatch):
    import dataclasses

    from tclib.train import StepMeter

    reads = []
    read = StepMeter.read
    monkeypatch.setattr(StepMeter, "read", lambda self: reads.append(self.steps) or read(self))
    config = dataclasses.replace(CONFIG, epochs=2, batch_size=4, log_every=4)  # 24 points: 6 steps an epoch
    train(fresh_model(), Points(), mse, config, tmp_path)
    assert reads == [4, 2, 4, 2]  # after steps 4 and 6 of each epoch, the means of the steps since the last read


def test_a_compiled_student_trains_as_the_plain_one(tmp_path, monkeypatch):
    """`compile: true` (torch.compile of the model) gives the plain run's weights. The graphs are
    captured by dynamo and differentiated by AOTAutograd as in a real run, and executed eagerly
    (backend aot_eager): inductor's C++ build alone takes about a minute on 2 CPUs."""
    import dataclasses
    import functools

    from test_distributed import FixedTeacher, global_batch, student

    from tclib.teaching import TeachingObjective

    class Batches(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return {key: value[i] for key, value in global_batch().items()}

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    objective = TeachingObjective(FixedTeacher(), "pear", "ce", use_fine=True)
    config = TrainConfig(epochs=1, batch_size=3, lr=1e-3, clip_lr_scale=1.0, device="cpu", warmup_proportion=0.0)
    plain = train(student(), Batches(), objective, config, tmp_path / "plain")
    compiled = train(student(), Batches(), objective, dataclasses.replace(config, compile=True), tmp_path / "compiled")
    for (name, a), b in zip(plain.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    assert not all(torch.equal(a, b) for a, b in zip(plain.parameters(), student().parameters(), strict=True))  # it trained
