"""The CLIP4Clip student: CLIP towers, a temporal head, and mean pooling or AFA.

Temporal heads, as CLIP4Clip has them:
- `meanP`: the per-frame CLIP features as they are.
- `seqTransf`: frame position embeddings are added, a small transformer (CLIP's residual
  attention blocks, padded frames masked out of attention) mixes the frames, and its output is
  added back to the input features (residual).
Aggregation: masked mean of the L2-normalized frame features (CLIP4Clip), or AFA (TeachCLIP).
The video is one vector; similarity = CLIP's logit scale x cosine.

Checkpoints written by the reference code (TeachCLIP's or CLIP4Clip's `pytorch_model.bin.N`) load
as they are: `adapt_state_dict` maps their names (`frame_position_embeddings.*`,
`transformerClip.*`, `frameLinear.*`, `frameLinear2.*`; `clip.*` already has open_clip's names).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import Transformer
from torch import nn

from .afa import AFA
from .backbone import clip_width, encode_frames, encode_text_tokens
from .outputs import StudentOutput

log = logging.getLogger(__name__)

TEMPORAL_HEADS = ("meanP", "seqTransf")


class TemporalTransformer(nn.Module):
    """CLIP4Clip's seqTransf head: position embeddings + transformer + residual."""

    def __init__(self, clip: CLIP, layers: int = 4) -> None:
        super().__init__()
        width = clip_width(clip)
        heads = max(1, width // 64)
        max_positions = clip.positional_embedding.shape[0]  # the text context length, as the reference sizes it
        act_layer = type(clip.transformer.resblocks[0].mlp.gelu)
        self.frame_position_embeddings = nn.Embedding(max_positions, width)
        self.transformer = Transformer(width, layers, heads, act_layer=act_layer)
        self._init_from_text_tower(clip, layers)

    def _init_from_text_tower(self, clip: CLIP, layers: int) -> None:
        """As CLIP4Clip: start from CLIP's text position embeddings and first text layers."""
        text = clip.transformer
        if text.width != self.transformer.width or len(text.resblocks) < layers:
            log.info("seqTransf: text tower width/depth differs, keeping random initialization")
            return
        positions = clip.positional_embedding.detach()
        with torch.no_grad():
            self.frame_position_embeddings.weight.copy_(positions)
        for mine, theirs in zip(self.transformer.resblocks, text.resblocks, strict=False):  # the first layers
            mine.load_state_dict(theirs.state_dict())

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, num_frames, _ = frames.shape
        if num_frames > self.frame_position_embeddings.num_embeddings:
            raise ValueError(f"seqTransf has {self.frame_position_embeddings.num_embeddings} frame positions (the "
                             f"text context length), got {num_frames} frames")
        positions = torch.arange(num_frames, device=frames.device)
        x = frames + self.frame_position_embeddings(positions).unsqueeze(0)
        # Additive key mask, -1e6 on padded frames (the reference's value), one copy per head.
        key_mask = (1.0 - mask.to(frames.dtype)).unsqueeze(1) * -1e6  # (B, 1, F)
        attn_mask = key_mask.expand(batch, num_frames, num_frames)
        attn_mask = attn_mask.repeat_interleave(self.transformer.resblocks[0].attn.num_heads, dim=0)
        return self.transformer(x, attn_mask=attn_mask) + frames


def masked_mean_pool(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CLIP4Clip's video vector: normalize frames, masked mean, normalize again."""
    frames = F.normalize(frames, dim=-1)
    weights = mask.to(frames.dtype).unsqueeze(-1)
    pooled = (frames * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    return F.normalize(pooled, dim=-1)


# The reference code's names of the student's own layers -> ours.
REFERENCE_PREFIXES = {"frame_position_embeddings.": "temporal.frame_position_embeddings.",
                      "transformerClip.": "temporal.transformer.",
                      "frameLinear.": "afa.fc1.", "frameLinear2.": "afa.fc2."}


def rename_prefixes(state: dict[str, torch.Tensor], prefixes: dict[str, str]) -> dict[str, torch.Tensor]:
    """Keys starting with a key of `prefixes` get its value as prefix instead; the rest are kept."""
    renamed = {}
    for key, value in state.items():
        old = next((p for p in prefixes if key.startswith(p)), None)
        renamed[prefixes[old] + key[len(old):] if old else key] = value
    return renamed


class CLIP4Clip(nn.Module):
    """The student. `afa=True` makes it TeachCLIP's student; `afa=False` is plain CLIP4Clip.

    `mask_padding`: whether AFA gives padded frame slots zero weight (see `tclib.models.afa`).
    """

    def __init__(self, clip: CLIP, temporal: str = "seqTransf", afa: bool = False,
                 temporal_layers: int = 4, afa_temperature: float = 0.1, mask_padding: bool = False) -> None:
        super().__init__()
        if temporal not in TEMPORAL_HEADS:
            raise ValueError(f"temporal head must be one of {TEMPORAL_HEADS}, got {temporal!r}")
        self.clip = clip
        self.temporal_name = temporal
        self.temporal = TemporalTransformer(clip, temporal_layers) if temporal == "seqTransf" else None
        self.afa = AFA(clip_width(clip), afa_temperature, mask_padding) if afa else None

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Reference names -> ours. TeachCLIP's training code builds AFA's layers (`frameLinear*`) in
        every student; a student without AFA ignores them, as the reference's meanP/mean-pooling path does."""
        renamed = rename_prefixes(state, REFERENCE_PREFIXES)
        if self.afa is None:
            renamed = {k: v for k, v in renamed.items() if not k.startswith("afa.")}
        return renamed

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp()

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L) -> L2-normalized sentence features (B, D)."""
        sentence, _ = encode_text_tokens(self.clip, tokens)
        return F.normalize(sentence, dim=-1)

    def frame_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frames (B, F, 3, H, W) -> temporally mixed frame features (B, F, D)."""
        features = encode_frames(self.clip, frames, mask)
        return self.temporal(features, mask) if self.temporal is not None else features

    def encode_video(self, frames: torch.Tensor, mask: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frames and mask -> (L2-normalized video vector (B, D), AFA logits (B, F) or None)."""
        features = self.frame_features(frames, mask)
        if self.afa is None:
            return masked_mean_pool(features, mask), None
        return self.afa(features, mask)

    def forward(self, tokens: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor) -> StudentOutput:
        """This batch's embeddings and AFA logits; `.logits` of the output are the in-batch logits
        (captions x videos), over the global batch when trained over several processes."""
        video, afa_logits = self.encode_video(frames, mask)
        return StudentOutput(self.encode_text(tokens), video, self.logit_scale, afa_logits)
