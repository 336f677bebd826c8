"""The CLIP backbone: open_clip models by name, with a pretrained tag or a local checkpoint file.

`load_clip("ViT-B-32", "openai")` gives the weights the paper starts from; `load_clip("ViT-B-32",
"/path/to/file.pt")` loads a local file; `load_clip("tclib-tiny", "")` is the small random-init
config (tclib/models/configs/) that tests and the demo use. The helpers below expose what CLIP4Clip
and its teachers need beyond open_clip's own API: per-token text features (word features) and
frame batches of shape (B, F, 3, H, W).
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from pathlib import Path

import open_clip
import torch
from open_clip.model import CLIP
from open_clip.transformer import Transformer
from torch import nn

from ..data.frames import normalize_frames
from ..errors import CheckpointError, ParamsError
from .checkpoint import describe_key_mismatch

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
open_clip.add_model_config(CONFIG_DIR)


# Keys of OpenAI's released CLIP files that are not weights (OpenAI's own loader drops them too).
OPENAI_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")


def load_clip(model_name: str, pretrained: str = "") -> CLIP:
    """Create an open_clip CLIP model in float32.

    `pretrained` is an open_clip pretrained tag (downloaded by open_clip), a path to a local
    checkpoint file (open_clip's, tclib's, or OpenAI's released TorchScript file), or "" for
    random initialization.

    The activation must be the one the weights were trained with: OpenAI's weights (the `openai`
    tag, OpenAI's released files) use QuickGELU, which open_clip builds only for `*-quickgelu`
    model names. A model name whose activation disagrees with its weights is an error: open_clip
    itself would only warn, and every feature would drift.
    """
    is_file = check_clip_choice(model_name, pretrained)
    state = read_clip_state(pretrained)[0] if is_file else None
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # open_clip warns on root that no weights were loaded
    try:
        model = open_clip.create_model(model_name, pretrained=None if is_file else (pretrained or None))
    finally:
        root.setLevel(level)
    if not isinstance(model, CLIP):
        raise ParamsError(not_a_clip_message(model_name, type(model).__name__))
    if state is not None:
        load_clip_state(model, state, source=pretrained)
    return model.float()


def check_clip_choice(model_name: str, pretrained: str) -> bool:
    """Check a clip_model / clip_pretrained pair without building or downloading anything; return
    whether `pretrained` is a local file.

    The name must be an open_clip model that open_clip builds as its CLIP class; `pretrained` must be
    "", a pretrained tag of that model, or an existing file; and the activation the weights were
    trained with must be the one the name builds (see `check_activation`). A file counts as OpenAI's
    (QuickGELU) when it is a TorchScript archive, as OpenAI's released files are; other files say
    nothing about their activation, so the name decides. ParamsError or CheckpointError otherwise.
    """
    if model_name not in open_clip.list_models():
        raise ParamsError(f"unknown clip_model {model_name!r}; open_clip knows {len(open_clip.list_models())} "
                          f"models (open_clip.list_models()), plus tclib-tiny")
    model_class = open_clip_class_name(model_name)
    if model_class != "CLIP":
        raise ParamsError(not_a_clip_message(model_name, model_class))
    is_file = bool(pretrained) and (Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}
                                    or Path(pretrained).exists())
    if is_file and not Path(pretrained).is_file():
        raise CheckpointError(f"clip_pretrained file not found: {pretrained}")
    if pretrained and not is_file and pretrained not in open_clip.list_pretrained_tags_by_model(model_name):
        raise ParamsError(
            f"clip_pretrained {pretrained!r} is neither a file nor a pretrained tag of {model_name} "
            f"(tags: {open_clip.list_pretrained_tags_by_model(model_name)})"
        )
    trained_with_quick_gelu = None
    if is_file:
        trained_with_quick_gelu = True if is_torchscript_archive(Path(pretrained)) else None
    elif pretrained:
        trained_with_quick_gelu = bool(open_clip.get_pretrained_cfg(model_name, pretrained).get("quick_gelu", False))
    check_activation(model_name, pretrained, trained_with_quick_gelu)
    return is_file


def open_clip_class_name(model_name: str) -> str:
    """The class open_clip builds for `model_name`, read from its config: "CLIP", "CustomTextCLIP" (a
    Hugging Face or custom text tower) or "CoCa" (a multimodal decoder besides)."""
    config = open_clip.get_model_config(model_name) or {}
    if not (config.get("custom_text") or "hf_model_name" in config.get("text_cfg", {})):
        return "CLIP"
    return "CoCa" if "multimodal_cfg" in config else "CustomTextCLIP"


def not_a_clip_message(model_name: str, class_name: str) -> str:
    return (f"clip_model {model_name!r} is a {class_name}; tclib needs open_clip's CLIP class (a ViT or ResNet "
            "image tower and the built-in text transformer)")


def text_context_length(model_name: str) -> int:
    """The text tower's context length of an open_clip model (its config's, else open_clip's default 77)."""
    return int((open_clip.get_model_config(model_name) or {}).get("text_cfg", {}).get("context_length", 77))


def config_uses_quick_gelu(model_name: str) -> bool:
    """Whether open_clip builds `model_name` with QuickGELU (its config's `quick_gelu` flag)."""
    return bool((open_clip.get_model_config(model_name) or {}).get("quick_gelu", False))


def check_activation(model_name: str, pretrained: str, trained_with_quick_gelu: bool | None) -> None:
    """Raise ParamsError when the weights' activation (None: unknown) differs from the model name's."""
    if trained_with_quick_gelu is None or trained_with_quick_gelu == config_uses_quick_gelu(model_name):
        return
    if trained_with_quick_gelu:
        hint = (f"; use clip_model: {model_name}-quickgelu" if f"{model_name}-quickgelu" in open_clip.list_models()
                else "; use a *-quickgelu model name")
        raise ParamsError(f"clip_pretrained {pretrained!r} holds weights trained with QuickGELU (OpenAI's), but "
                          f"clip_model {model_name!r} is built with GELU{hint}")
    raise ParamsError(f"clip_pretrained {pretrained!r} holds weights trained with GELU, but clip_model "
                      f"{model_name!r} is built with QuickGELU; use the model name without -quickgelu")


def read_clip_state(path: str | Path) -> tuple[dict[str, torch.Tensor], bool]:
    """A local CLIP checkpoint's state dict, and whether it is OpenAI's released TorchScript file.

    Accepts a plain state dict, a training checkpoint ({"state_dict": ...}), and OpenAI's TorchScript
    archives (whose non-weight entries input_resolution, context_length and vocab_size are dropped).
    """
    path = Path(path)
    is_openai_release = is_torchscript_archive(path)  # OpenAI's released files are TorchScript archives
    try:
        if is_openai_release:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch marks torch.jit as deprecated
                state = torch.jit.load(path, map_location="cpu").state_dict()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot be read as a CLIP checkpoint: {err}") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path}: not a CLIP state dict (a mapping of parameter names to tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items() if k not in OPENAI_NON_WEIGHT_KEYS}
    return state, is_openai_release


def is_torchscript_archive(path: Path) -> bool:
    """A TorchScript archive is a zip file holding code/ and constants.pkl beside the data."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def load_clip_state(model: CLIP, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load a CLIP state dict into `model`, strictly: any key or shape that differs is an error naming `source`."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    wrong = [f"{k} {tuple(state[k].shape)} (model {tuple(ours[k].shape)})"
             for k in sorted(set(ours) & set(state)) if ours[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{source}: does not fit clip_model {type(model).__name__}: "
                              + describe_key_mismatch(missing, unexpected, wrong))
    model.load_state_dict(state)


class Tokenizer:
    """CLIP BPE tokenization as CLIP4Clip does it: [SOT] + words[:max_words-2] + [EOT], zero padded."""

    def __init__(self, max_words: int) -> None:
        if max_words < 3:
            raise ParamsError(f"max_words must be at least 3, got {max_words}")
        self.max_words = max_words
        self._bpe = open_clip.tokenizer.SimpleTokenizer()
        self.sot = self._bpe.encoder["<start_of_text>"]
        self.eot = self._bpe.encoder["<end_of_text>"]

    def truncated(self, text: str) -> bool:
        """Whether `text` has more words (BPE tokens) than fit, so that its end is cut off."""
        return len(self._bpe.encode(text)) > self.max_words - 2

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.max_words, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot] + self._bpe.encode(text)[: self.max_words - 2] + [self.eot]
            out[row, : len(ids)] = torch.tensor(ids)
        return out


def encode_text_tokens(clip: CLIP, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run CLIP's text tower; return (sentence (B, D), words (B, L, D)), both projected, unnormalized.

    The sentence feature is the end-of-text token's (the highest token id, as CLIP does); the word
    features are every position's output after the final LayerNorm and projection, padding included
    (as X-CLIP uses them).
    """
    length = tokens.shape[1]
    if length > clip.positional_embedding.shape[0]:
        raise ParamsError(f"max_words {length} exceeds the text tower's context length "
                          f"{clip.positional_embedding.shape[0]}")
    x = clip.token_embedding(tokens) + clip.positional_embedding[:length]
    mask = clip.attn_mask[:length, :length] if clip.attn_mask is not None else None
    x = clip.transformer(x, attn_mask=mask)
    x = clip.ln_final(x)
    words = clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection
    sentence = words[torch.arange(words.shape[0], device=words.device), tokens.argmax(dim=-1)]
    return sentence, words


def frames_to_images(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Frames (B, F, 3, H, W), uint8 or normalized float, and mask (B, F) -> normalized images (B*F, 3, H, W).

    Padded slots (mask 0) are all-zero images in normalized space, as the reference loaders pad them
    (a black uint8 frame would normalize to -mean/std instead); they still pass through the image
    tower, as in the reference.
    """
    images = frames.flatten(0, 1)
    images = normalize_frames(images) if images.dtype == torch.uint8 else images.float()
    return images * mask.flatten().to(images.dtype).view(-1, 1, 1, 1)


def encode_frames(clip: CLIP, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Frames (B, F, 3, H, W), uint8 or normalized float, and mask (B, F) -> per-frame CLIP features (B, F, D)."""
    batch, num_frames = frames.shape[:2]
    return clip.encode_image(frames_to_images(frames, mask)).view(batch, num_frames, -1)


def clip_width(clip: CLIP) -> int:
    """The joint embedding size D."""
    return int(clip.text_projection.shape[-1] if not isinstance(clip.text_projection, nn.Linear)
               else clip.text_projection.out_features)


def set_grad_checkpointing(model: nn.Module, enabled: bool) -> int:
    """Switch activation checkpointing on or off in every open_clip transformer stack inside `model`
    (the image and text towers of each CLIP, and the seqTransf heads of a student and of teachers);
    returns how many stacks were switched. A checkpointed stack keeps only each block's input in the
    forward pass and recomputes the block in backward: the same losses and gradients, far less memory
    (see tclib.memory), about a third more compute."""
    stacks = [module for module in model.modules() if isinstance(module, Transformer)]
    for stack in stacks:
        stack.grad_checkpointing = enabled
    return len(stacks)
