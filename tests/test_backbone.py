"""The CLIP backbone: OpenAI's weights are built with QuickGELU, from a pretrained tag or OpenAI's
released TorchScript file, in the towers, in the seqTransf head and in every teacher."""

import json
import warnings

import open_clip
import pytest
import torch
from torch import nn

from tclib.errors import CheckpointError, ParamsError
from tclib.models import TEACHERS, CLIP4Clip, build_teacher, load_clip
from tclib.models.checkpoint import save_checkpoint


def uses_quick_gelu(model: torch.nn.Module) -> bool:
    """True when every MLP activation in `model` is QuickGELU (and it has at least one)."""
    from open_clip.transformer import QuickGELU

    activations = [m.mlp.gelu for m in model.modules() if hasattr(m, "mlp") and hasattr(m.mlp, "gelu")]
    return bool(activations) and all(isinstance(a, QuickGELU) for a in activations)

@pytest.fixture(scope="module")
def quickgelu_name(tmp_path_factory):
    """tclib-tiny with OpenAI's activation, registered with open_clip as 'tclib-tiny-quickgelu'."""
    from tclib.models.backbone import CONFIG_DIR

    config = json.loads((CONFIG_DIR / "tclib-tiny.json").read_text())
    config["quick_gelu"] = True
    path = tmp_path_factory.mktemp("configs") / "tclib-tiny-quickgelu.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return "tclib-tiny-quickgelu"


class OpenAIRelease(nn.Module):
    """A CLIP laid out as OpenAI's released files are: its weights under OpenAI's names (which are
    open_clip's for a ViT) plus the non-weight entries input_resolution, context_length, vocab_size."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        for name, child in clip.named_children():
            self.add_module(name, child)
        for name, parameter in clip.named_parameters(recurse=False):
            self.register_parameter(name, parameter)
        for name in ("input_resolution", "context_length", "vocab_size"):
            self.register_buffer(name, torch.tensor(32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)


def write_openai_release(clip: nn.Module, path) -> None:
    with warnings.catch_warnings():  # torch.jit is deprecated, but OpenAI's files are TorchScript
        warnings.simplefilter("ignore")
        torch.jit.trace(OpenAIRelease(clip), torch.zeros(1, 3, 32, 32)).save(str(path))


def test_openai_tag_with_a_gelu_model_name_is_an_error():
    # open_clip would build ViT-B-32 with GELU and only warn; the check comes before any download
    with pytest.raises(ParamsError, match=r"'openai' holds weights trained with QuickGELU.*'ViT-B-32' is built "
                                          r"with GELU; use clip_model: ViT-B-32-quickgelu"):
        load_clip("ViT-B-32", "openai")
    with pytest.raises(ParamsError, match="use clip_model: ViT-B-16-quickgelu"):
        load_clip("ViT-B-16", "openai")


def test_a_pretrained_tag_builds_the_activation_its_weights_need(tmp_path, quickgelu_name, monkeypatch):
    torch.manual_seed(0)
    weights = load_clip(quickgelu_name, "")
    path = save_checkpoint(weights.state_dict(), tmp_path / "weights.pt")
    # an 'openai' tag of the tiny model whose "download" is the local file, as open_clip's registry has it
    registry = open_clip.pretrained._PRETRAINED
    monkeypatch.setitem(registry, quickgelu_name, {"openai": {"file": str(path), "quick_gelu": True}})
    monkeypatch.setitem(registry, "tclib-tiny", {"openai": {"file": str(path), "quick_gelu": True}})
    clip = load_clip(quickgelu_name, "openai")
    assert uses_quick_gelu(clip)
    assert torch.equal(clip.visual.proj, weights.visual.proj)
    with pytest.raises(ParamsError, match="'tclib-tiny' is built with GELU; use clip_model: tclib-tiny-quickgelu"):
        load_clip("tclib-tiny", "openai")


def test_openai_torchscript_release_loads_with_quickgelu(tmp_path, quickgelu_name):
    torch.manual_seed(0)
    weights = load_clip(quickgelu_name, "")
    write_openai_release(weights, tmp_path / "ViT-tiny.pt")
    clip = load_clip(quickgelu_name, str(tmp_path / "ViT-tiny.pt"))
    assert uses_quick_gelu(clip)
    for key, value in weights.state_dict().items():
        assert torch.equal(clip.state_dict()[key], value), key
    with pytest.raises(ParamsError, match=r"QuickGELU \(OpenAI's\), but clip_model 'tclib-tiny' is built with GELU"):
        load_clip("tclib-tiny", str(tmp_path / "ViT-tiny.pt"))


def test_every_model_on_openai_weights_uses_quickgelu(quickgelu_name):
    clip = load_clip(quickgelu_name, "")
    student = CLIP4Clip(clip, temporal="seqTransf", afa=True, temporal_layers=2)
    assert uses_quick_gelu(student.clip) and uses_quick_gelu(student.temporal)
    for name in TEACHERS:
        teacher = build_teacher(name, load_clip(quickgelu_name, ""), max_words=32, max_frames=4, temporal_layers=1)
        assert uses_quick_gelu(teacher), name
    assert not uses_quick_gelu(load_clip("tclib-tiny", ""))  # GELU where the config says so


def test_clip_file_with_wrong_keys_names_them(tmp_path):
    state = load_clip("tclib-tiny", "").state_dict()
    state["visual.proj"] = torch.zeros(3, 3)
    state["extra.weight"] = torch.zeros(1)
    del state["ln_final.bias"]
    path = save_checkpoint(state, tmp_path / "clip.pt")
    with pytest.raises(CheckpointError, match=r"clip\.pt: does not fit clip_model CLIP: missing keys "
                                              r"\['ln_final\.bias'\].*unexpected keys \['extra\.weight'\].*"
                                              r"wrong shapes \['visual\.proj \(3, 3\) \(model \(64, 64\)\)'\]"):
        load_clip("tclib-tiny", str(path))
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes\.pt: cannot be read as a CLIP checkpoint"):
        load_clip("tclib-tiny", str(tmp_path / "notes.pt"))


def checkpointing_step(student: CLIP4Clip, batch: dict, enabled: bool) -> tuple[torch.Tensor, dict, int]:
    """The contrastive loss and every gradient of one backward, with checkpointing on or off, and how
    many tensors autograd saved for backward."""
    from tclib.models.backbone import set_grad_checkpointing
    from tclib.teaching import ContrastiveObjective

    assert set_grad_checkpointing(student, enabled) == 3  # image tower, text tower, seqTransf head
    student.zero_grad(set_to_none=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        loss, _ = ContrastiveObjective()(student, batch)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in student.named_parameters()}, len(saved)


def test_grad_checkpointing_gives_the_plain_loss_and_gradients():
    torch.manual_seed(0)
    student = CLIP4Clip(load_clip("tclib-tiny", ""), temporal="seqTransf", afa=True, temporal_layers=2)
    batch = {"tokens": torch.randint(1, 1000, (4, 12)), "frames": torch.randint(0, 256, (4, 3, 3, 32, 32), dtype=torch.uint8),
             "frame_mask": torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])}
    loss, grads, saved = checkpointing_step(student, batch, enabled=False)
    loss_ckpt, grads_ckpt, saved_ckpt = checkpointing_step(student, batch, enabled=True)
    torch.testing.assert_close(loss_ckpt, loss, rtol=1e-6, atol=1e-7)
    assert grads_ckpt.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    assert saved_ckpt < saved / 2  # each block keeps its input only (its rest is recomputed in backward)
