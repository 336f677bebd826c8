"""X-Pool teacher (Gorti et al., CVPR 2022): cross-modal attention pools the frames for each text.

Features: the text tower's end-of-text feature t ("sentence", (T, D)) and the raw CLIP feature of
every frame slot f_1..f_F ("frames", (V, F, D), with the video "mask"), both projected and
unnormalized. A single text-conditioned attention layer pools a video into one vector per text:

    q = W_q LN_in(t),  k_j = W_k LN_in(f_j),  v_j = W_v LN_in(f_j)      (one LayerNorm for both)
    a_j = softmax_j(q . k_j / sqrt(d))                                    (d = D / heads)
    o = LN_attn(W_o sum_j a_j v_j)
    pooled(video | t) = LN_out(o + dropout(W o))

W_q, W_k, W_v, W_o and W start as identities with zero biases; dropout is 0.3 (off in eval mode,
where TeachCLIP runs its teachers).

Logits, as TeachCLIP computes them: logit_scale.exp() * cos(t_i, pooled(video_j | t_i)) for every
text i and video j, CLIP's logit scale included (X-Pool's own code returns the cosine and scales it
in its loss: the same numbers). Scoring T texts against V videos holds a few (V, T, D) tensors:
score large sets in chunks of texts.

Frame-text relevance (what TeachCLIP's fine-grained teaching uses): a_j for caption i over the
frames of its own video i, the attention weights above at temperature 1; with several heads, their
mean over heads (tclib's choice: TeachCLIP's code handles one head only).

Quirks of the reference, and the options:
- The softmax runs over every frame slot, padded ones included: TeachCLIP feeds X-Pool CLIP4Clip's
  frames (padded slots are all-zero images in normalized space) and never passes it the video mask.
  `mask_padding=True` gives padded slots zero weight instead. X-Pool's own loader never pads (it
  repeats the last frame of a short video); on videos without padding both settings agree.
- Texts are CLIP4Clip's tokens (max_words, zero padding) where X-Pool's own code uses HuggingFace's
  tokenizer (77 tokens, padded with the end-of-text id): under the causal text mask the end-of-text
  feature is the same for any caption that fits in max_words.
- TeachCLIP hard-codes one head, 12 frames, 224 px images and D = 512; here any frame count, image
  size and D = clip_width(clip) work. `heads` is X-Pool's own `num_mha_heads` option (its default 1
  is what TeachCLIP fixes); `dropout` is X-Pool's `transformer_dropout` (0.3 as TeachCLIP fixes it).
- The CLIP towers are HuggingFace's CLIPModel in the reference (QuickGELU, text feature at the
  argmax of the token ids, i.e. end-of-text for CLIP4Clip's zero-padded tokens). Here they are
  open_clip's, which compute the same features; build the backbone with QuickGELU (a `*-quickgelu`
  model name) for the released weights.
- The released file is X-Pool's trainer checkpoint, {"epoch", "state_dict", "optimizer"}, with
  HuggingFace key names under `clip.` and the pooling head under `pool_frames.`;
  `adapt_state_dict` converts them (tables `HF_*` and `POOL_KEYS` below).
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from torch import nn

from ...errors import ParamsError
from ..afa import masked_softmax
from ..backbone import clip_width, encode_frames, encode_text_tokens
from .base import Features, Teacher

# HuggingFace CLIPModel names (after the `clip.` prefix) -> open_clip names. HF stores the two
# projections as Linear weights, open_clip as the transposed matrices.
HF_KEYS = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_projection.weight": "text_projection",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "visual_projection.weight": "visual.proj",
    "logit_scale": "logit_scale",
}
HF_TRANSPOSED = ("text_projection.weight", "visual_projection.weight")
HF_LAYER_NORMS = {"text_model.final_layer_norm.": "ln_final.",
                  "vision_model.pre_layrnorm.": "visual.ln_pre.",  # sic: HF's spelling
                  "vision_model.post_layernorm.": "visual.ln_post."}
HF_TOWERS = {"text_model.encoder.layers.": "transformer.resblocks.",
             "vision_model.encoder.layers.": "visual.transformer.resblocks."}
HF_BLOCK = re.compile("(?P<tower>" + "|".join(map(re.escape, HF_TOWERS)) + r")(?P<index>\d+)\.(?P<rest>.+)$")
# Inside one residual block; q, k and v are merged into in_proj_weight / in_proj_bias (in that order).
HF_BLOCK_KEYS = {"self_attn.out_proj.": "attn.out_proj.", "layer_norm1.": "ln_1.", "layer_norm2.": "ln_2.",
                 "mlp.fc1.": "mlp.c_fc.", "mlp.fc2.": "mlp.c_proj."}
HF_QKV = re.compile(r"self_attn\.(?P<part>[qkv])_proj\.(?P<kind>weight|bias)$")

# X-Pool's pooling head (`pool_frames.`) -> ours (`pool.`).
POOL_KEYS = {"layer_norm1.": "norm_in.", "cross_attn.q_proj.": "q_proj.", "cross_attn.k_proj.": "k_proj.",
             "cross_attn.v_proj.": "v_proj.", "cross_attn.out_proj.": "out_proj.", "layer_norm2.": "norm_attn.",
             "linear_proj.": "linear.", "layer_norm3.": "norm_out."}

# Index buffers (arange) that the transformers versions X-Pool and TeachCLIP pin save with the
# weights; they are not weights, and open_clip has no such buffer.
IGNORED_KEYS = ("clip.text_model.embeddings.position_ids", "clip.vision_model.embeddings.position_ids")


def _replace_prefix(key: str, table: dict[str, str]) -> str | None:
    """`key` with its prefix from `table` replaced, or None when no prefix matches."""
    old = next((p for p in table if key.startswith(p)), None)
    return None if old is None else table[old] + key[len(old):]


def _convert_hf_key(key: str) -> str | None:
    """Our name of one X-Pool checkpoint key (q/k/v aside), or None when it is not in X-Pool's layout."""
    if key.startswith("pool_frames."):
        new = _replace_prefix(key.removeprefix("pool_frames."), POOL_KEYS)
        return None if new is None else "pool." + new
    if not key.startswith("clip."):
        return None
    name = key.removeprefix("clip.")
    block = HF_BLOCK.match(name)
    if block:
        inner = _replace_prefix(block["rest"], HF_BLOCK_KEYS)
        return None if inner is None else f"clip.{HF_TOWERS[block['tower']]}{block['index']}.{inner}"
    new = HF_KEYS.get(name) or _replace_prefix(name, HF_LAYER_NORMS)
    return None if new is None else "clip." + new


class TextConditionedPool(nn.Module):
    """X-Pool's pooling head: one attention layer, the text as query, the frames as keys and values."""

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.3) -> None:
        super().__init__()
        if dim % heads:
            raise ParamsError(f"X-Pool heads ({heads}) must divide the embedding size ({dim})")
        self.heads = heads
        self.norm_in = nn.LayerNorm(dim)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.norm_attn = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, dim)
        self.norm_out = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        for layer in (self.q_proj, self.k_proj, self.v_proj, self.out_proj, self.linear):
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1))

    def attention(self, text: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Weights (V, T, H, F) of every text (T, D) over every video's frames (V, F, D); mask (V, F) or None."""
        q = self._heads(self.q_proj(self.norm_in(text)))  # (T, H, d)
        k = self._heads(self.k_proj(self.norm_in(frames)))  # (V, F, H, d)
        logits = torch.einsum("thd,vfhd->vthf", q, k) / math.sqrt(q.shape[-1])
        return masked_softmax(logits, None if mask is None else mask[:, None, None, :])

    def pair_attention(self, text: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Weights (B, H, F) of text i (B, D) over the frames of video i only (B, F, D)."""
        q = self._heads(self.q_proj(self.norm_in(text)))  # (B, H, d)
        k = self._heads(self.k_proj(self.norm_in(frames)))  # (B, F, H, d)
        logits = torch.einsum("bhd,bfhd->bhf", q, k) / math.sqrt(q.shape[-1])
        return masked_softmax(logits, None if mask is None else mask[:, None, :])

    def forward(self, text: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Text (T, D), frames (V, F, D) -> pooled videos (V, T, D): video v as seen by text t."""
        weights = self.attention(text, frames, mask)  # (V, T, H, F)
        values = self._heads(self.v_proj(self.norm_in(frames)))  # (V, F, H, d)
        attended = torch.einsum("vthf,vfhd->vthd", weights, values).flatten(-2)  # (V, T, D)
        attended = self.norm_attn(self.out_proj(attended))
        return self.norm_out(attended + self.dropout(self.linear(attended)))


class XPool(Teacher):
    name: ClassVar[str] = "xpool"

    def __init__(self, clip: CLIP, max_words: int, max_frames: int, temporal_layers: int = 4,
                 mask_padding: bool = False, heads: int = 1, dropout: float = 0.3) -> None:
        super().__init__()  # max_words, max_frames and temporal_layers: nothing in X-Pool depends on them
        self.clip = clip
        self.mask_padding = mask_padding
        self.pool = TextConditionedPool(clip_width(clip), heads, dropout)

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """X-Pool's released names (HuggingFace CLIP, pool_frames) -> ours; keys of neither layout are kept.

        A block's q, k and v become one in_proj (in that order) when all three are there with
        compatible shapes; otherwise they stay as they are, so that loading names them.
        """
        adapted: dict[str, torch.Tensor] = {}
        qkv: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}  # in_proj key -> q/k/v -> (key, value)
        for key, value in state.items():
            if key in IGNORED_KEYS:
                continue
            block = HF_BLOCK.match(key.removeprefix("clip.")) if key.startswith("clip.") else None
            part = HF_QKV.match(block["rest"]) if block else None
            if part and block:
                ours = f"clip.{HF_TOWERS[block['tower']]}{block['index']}.attn.in_proj_{part['kind']}"
                qkv.setdefault(ours, {})[part["part"]] = (key, value)
                continue
            new = _convert_hf_key(key)
            if new is None:
                adapted[key] = value
            elif key.removeprefix("clip.") in HF_TRANSPOSED and value.ndim == 2:
                adapted[new] = value.t()
            else:
                adapted[new] = value
        for ours, parts in qkv.items():
            if set(parts) == set("qkv") and len({value.shape[1:] for _, value in parts.values()}) == 1:
                adapted[ours] = torch.cat([parts[p][1] for p in "qkv"])
            else:
                adapted.update(parts.values())
        return adapted

    def encode_text(self, tokens: torch.Tensor) -> Features:
        sentence, _ = encode_text_tokens(self.clip, tokens)
        return {"sentence": sentence}

    def encode_video(self, frames: torch.Tensor, mask: torch.Tensor) -> Features:
        return {"frames": encode_frames(self.clip, frames, mask), "mask": mask}

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        mask = video["mask"] if self.mask_padding else None
        pooled = self.pool(text["sentence"], video["frames"], mask)  # (V, T, D)
        cosine = torch.einsum("td,vtd->tv", F.normalize(text["sentence"], dim=-1), F.normalize(pooled, dim=-1))
        return self.clip.logit_scale.exp() * cosine

    def relevance(self, text: Features, video: Features) -> torch.Tensor:
        mask = video["mask"] if self.mask_padding else None
        return self.pool.pair_attention(text["sentence"], video["frames"], mask).mean(dim=1)
