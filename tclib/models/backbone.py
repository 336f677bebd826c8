"""The CLIP backbone: open_clip models by name, with a pretrained tag or a local checkpoint file.

`load_clip("ViT-B-32", "openai")` gives the weights the paper starts from; `load_clip("ViT-B-32",
"/path/to/file.pt")` loads a local file; `load_clip("tclib-tiny", "")` is the small random-init
config (tclib/models/configs/) that tests and the demo use. The helpers below expose what CLIP4Clip
and its teachers need beyond open_clip's own API: per-token text features (word features) and
frame batches of shape (B, F, 3, H, W).
"""

from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import torch
from open_clip.model import CLIP
from torch import nn

from ..data.frames import normalize_frames
from ..errors import CheckpointError, ParamsError

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
open_clip.add_model_config(CONFIG_DIR)


def load_clip(model_name: str, pretrained: str = "") -> CLIP:
    """Create an open_clip CLIP model in float32.

    `pretrained` is an open_clip pretrained tag (downloaded by open_clip), a path to a local
    checkpoint file, or "" for random initialization.
    """
    if model_name not in open_clip.list_models():
        raise ParamsError(f"unknown clip_model {model_name!r}; open_clip knows {len(open_clip.list_models())} "
                          f"models (open_clip.list_models()), plus tclib-tiny")
    is_file = bool(pretrained) and (Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}
                                    or Path(pretrained).exists())
    if is_file and not Path(pretrained).is_file():
        raise CheckpointError(f"clip_pretrained file not found: {pretrained}")
    if pretrained and not is_file and pretrained not in open_clip.list_pretrained_tags_by_model(model_name):
        raise ParamsError(
            f"clip_pretrained {pretrained!r} is neither a file nor a pretrained tag of {model_name} "
            f"(tags: {open_clip.list_pretrained_tags_by_model(model_name)})"
        )
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # open_clip warns on root that no weights were loaded
    try:
        model = open_clip.create_model(model_name, pretrained=None)
    finally:
        root.setLevel(level)
    if is_file:
        load_clip_state(model, pretrained)
    elif pretrained:
        model = open_clip.create_model(model_name, pretrained=pretrained)
    if not isinstance(model, CLIP):
        raise ParamsError(f"clip_model {model_name!r} is a {type(model).__name__}; tclib needs open_clip's CLIP "
                          "class (a ViT or ResNet image tower and the built-in text transformer)")
    return model.float()


def load_clip_state(model: CLIP, path: str | Path) -> None:
    """Load a local CLIP state dict (ours, open_clip's, or a TorchScript OpenAI file) into `model`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        try:  # OpenAI's released files are TorchScript archives
            state = torch.jit.load(path, map_location="cpu").state_dict()
        except Exception as err:
            raise CheckpointError(f"{path}: cannot be read as a CLIP checkpoint: {err}") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: keys do not fit this CLIP model: missing {sorted(missing)[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {sorted(unexpected)[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )


class Tokenizer:
    """CLIP BPE tokenization as CLIP4Clip does it: [SOT] + words[:max_words-2] + [EOT], zero padded."""

    def __init__(self, max_words: int) -> None:
        if max_words < 3:
            raise ParamsError(f"max_words must be at least 3, got {max_words}")
        self.max_words = max_words
        self._bpe = open_clip.tokenizer.SimpleTokenizer()
        self.sot = self._bpe.encoder["<start_of_text>"]
        self.eot = self._bpe.encoder["<end_of_text>"]

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


def encode_frames(clip: CLIP, frames: torch.Tensor) -> torch.Tensor:
    """Frames (B, F, 3, H, W), uint8 or normalized float -> per-frame CLIP features (B, F, D)."""
    batch, num_frames = frames.shape[:2]
    images = frames.flatten(0, 1)
    images = normalize_frames(images) if images.dtype == torch.uint8 else images
    return clip.encode_image(images).view(batch, num_frames, -1)


def clip_width(clip: CLIP) -> int:
    """The joint embedding size D."""
    return int(clip.text_projection.shape[-1] if not isinstance(clip.text_projection, nn.Linear)
               else clip.text_projection.out_features)
