"""TS2-Net teacher (Liu et al., ECCV 2022): token selection, a temporal transformer over the selected
tokens, and frame-weighted sentence-frame matching, as TeachCLIP loads and runs it.

Video: every frame goes through CLIP's image tower; all its output tokens (class token and
patches) pass the final LayerNorm and projection. A small score network rates each token:

    h = GELU(W1 LayerNorm(token))                      (width D/2, no bias)
    score = tanh(w3 . GELU(W2 [h_token, h_class]))     (each token's h next to its frame's class h)

Each frame keeps its class token plus the top-3 patch tokens by score, in ascending patch order,
so a video of F frames becomes 4F tokens (frame-major). CLIP4Clip's seqTransf head runs over all
4F tokens (position embeddings 0..4F-1, wrapping at the table size: the reference's `% 77`;
residual) and each frame is represented by its class token's output, L2-normalized: f_1..f_F.

Logits, for a text with normalized sentence feature s and a video:

    c_f = s . f_f                                       (cosine per frame)
    w   = softmax_f(4 c_f / ||c||_2)                    (norm over the frames the mask keeps)
    logit = CLIP logit scale x sum_f w_f c_f

Frame-text relevance of a positive pair: softmax over all F frame slots of c_f, at temperature 1.

Quirks of the reference matched here (defaults):
- No token shift: TeachCLIP builds TS2-Net's CLIP without TS2-Net's patch shift.
- The padding mask of the 4F tokens is the frame mask *tiled* (token j takes frame j % F's flag)
  instead of repeated per frame (j // 4): it masks the temporal head's attention keys, and the
  frame softmax of the logits keeps frame f only where token 4f is unmasked, i.e. where frame
  (4f) % F is real. On a padded video this lets padded frames attend and be weighed, and hides some
  real ones; on a full video nothing changes.
- The relevance softmax runs over padded slots too (all-zero images in normalized space, as the
  reference loaders pad them).
- Released TS2-Net checkpoints store the attention of image-tower layers 10 and 11 under
  `attn.net.*` (TS2-Net wraps those layers for its patch shift). TeachCLIP's non-strict loader
  ignores those keys and keeps the pretrained CLIP's attention there, so `adapt_state_dict` drops
  them and keeps the backbone's own weights for those layers (logged): build the teacher on the
  same pretrained CLIP as the checkpoint for TeachCLIP's numbers.

Not matched: TeachCLIP casts TS2-Net's CLIP towers to fp16 before loading and runs them so; here
everything is float32 (the logits then differ by about 1e-3). Neither selection passes a
gradient to the score network (the reference's perturbed top-k estimator is not implemented; the
teacher is frozen in TeachCLIP).

Options:
- `noisy_selection=True`: the reference's perturbed top-k, which it runs in eval mode too: the
  selection is the average of the top-3 one-hots of 500 copies of the scores plus Gaussian noise
  (sigma 0.05), so the selected tokens are random mixtures of patches. Default: the noise-free
  hard top-3 (the limit of sigma -> 0).
- `token_shift=True`: TS2-Net's own model instead of TeachCLIP's: in image-tower layers 10 and 11
  (12-layer towers), before attention, patch tokens 1, 1+d, 1+2d, ... take the previous frame's
  value and tokens 4, 4+d, ... the next frame's (d = tokens // 7); the fine-tuned `attn.net.*`
  weights of those layers are loaded.
- `mask_padding=True`: padded slots get zero weight everywhere: the temporal head masks each
  frame's own 4 tokens, and the logits' and relevance's softmaxes skip padded frames.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import VisionTransformer
from torch import nn

from ...errors import ParamsError
from ..afa import masked_softmax
from ..backbone import clip_width, encode_text_tokens, frames_to_images
from ..student import TemporalTransformer, rename_prefixes
from .base import Features, Teacher

log = logging.getLogger(__name__)

TOP_K = 3  # patch tokens kept per frame, besides the class token
TOKENS_PER_FRAME = 1 + TOP_K
FRAME_TEMPERATURE = 0.25  # the logits' frame softmax runs on 4 x the normalized cosines
NOISE_SAMPLES = 500
NOISE_SIGMA = 0.05
SHIFT_LAYERS = (10, 11)
SHIFT_DIVISIONS = 7
TEMPORAL_MASK_VALUE = -1e6  # the reference's additive attention mask value

# Released TS2-Net checkpoints (as TeachCLIP loads them) name our layers differently; `clip.*`
# already has open_clip's names.
REFERENCE_PREFIXES = {
    "frame_position_embeddings.": "temporal.frame_position_embeddings.",
    "transformerClip.": "temporal.transformer.",
    "visual_token_selector.score_predictor.in_conv.0.": "token_scorer.norm.",
    "visual_token_selector.score_predictor.in_conv.1.": "token_scorer.reduce.",
    "visual_token_selector.score_predictor.out_conv.0.": "token_scorer.hidden.",
    "visual_token_selector.score_predictor.out_conv.2.": "token_scorer.out.",
}
_ATTENTION_PARAMS = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
# Attention weights of the shifted layers as TS2-Net saves them. TeachCLIP's module has no such
# parameters, so its non-strict loader ignores them (and keeps the pretrained CLIP's attention).
SHIFTED_ATTENTION_KEYS = tuple(f"clip.visual.transformer.resblocks.{layer}.attn.net.{param}"
                               for layer in SHIFT_LAYERS for param in _ATTENTION_PARAMS)
# Modules that both TS2-Net and TeachCLIP build and load but never use in any output (a video
# prompt encoder and a text token selector): dropped, so that this class need not carry them.
UNUSED_KEYS = (
    "visual_prompt_encoder.conv1.weight", "visual_prompt_encoder.positional_embedding",
    "visual_prompt_encoder.layer_norm.weight", "visual_prompt_encoder.layer_norm.bias",
    "text_token_selector.score_predictor.in_conv.0.weight", "text_token_selector.score_predictor.in_conv.0.bias",
    "text_token_selector.score_predictor.in_conv.1.weight", "text_token_selector.score_predictor.in_conv.1.bias",
    "text_token_selector.score_predictor.out_conv.0.weight", "text_token_selector.score_predictor.out_conv.2.weight",
)


class TokenScorer(nn.Module):
    """TS2-Net's score network: one score in (-1, 1) per token, from the token and its frame's class token."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.reduce = nn.Linear(dim, dim // 2, bias=False)
        self.hidden = nn.Linear(dim, dim // 2, bias=False)
        self.out = nn.Linear(dim // 2, 1, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, 1 + P, D) tokens, class token first -> (N, 1 + P) scores."""
        h = F.gelu(self.reduce(self.norm(tokens)))
        h = torch.cat([h, h[:, :1].expand_as(h)], dim=-1)
        return torch.tanh(self.out(F.gelu(self.hidden(h)))).squeeze(-1)


def select_tokens(tokens: torch.Tensor, scores: torch.Tensor, k: int = TOP_K, noisy: bool = False) -> torch.Tensor:
    """Class token + the k best-scored patch tokens in ascending patch order: (N, 1 + P, D) -> (N, 1 + k, D).

    `noisy`: the reference's perturbed top-k: the average, over NOISE_SAMPLES copies of the patch
    scores plus N(0, NOISE_SIGMA^2) noise, of the one-hot top-k (sorted) selections.
    """
    patches, patch_scores = tokens[:, 1:], scores[:, 1:]
    if not noisy:
        index = patch_scores.topk(k, dim=-1).indices.sort(dim=-1).values  # (N, k)
        chosen = patches.gather(1, index.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
    else:
        noise = torch.randn(*patch_scores.shape[:1], NOISE_SAMPLES, patch_scores.shape[1],
                            dtype=patch_scores.dtype, device=patch_scores.device)
        perturbed = patch_scores.unsqueeze(1) + NOISE_SIGMA * noise  # (N, S, P)
        index = perturbed.topk(k, dim=-1).indices.sort(dim=-1).values  # (N, S, k)
        counts = torch.zeros(index.shape[0], k, patches.shape[1], dtype=patches.dtype, device=patches.device)
        counts.scatter_add_(2, index.transpose(1, 2), torch.ones_like(index.transpose(1, 2), dtype=patches.dtype))
        chosen = torch.einsum("nkp,npd->nkd", counts / NOISE_SAMPLES, patches)
    return torch.cat([tokens[:, :1], chosen], dim=1)


def shift_tokens(x: torch.Tensor, num_frames: int, divisions: int = SHIFT_DIVISIONS) -> torch.Tensor:
    """TS2-Net's patch shift on (N*F, L, W) tokens: with d = L // divisions, tokens 1, 1+d, ... take
    the previous frame's value and tokens 4, 4+d, ... the next frame's (first/last frames keep theirs)."""
    length, width = x.shape[1:]
    step = max(1, length // divisions)
    x = x.reshape(-1, num_frames, length, width)
    shifted = x.clone()
    backward, forward = torch.arange(1, length, step), torch.arange(4, length, step)
    shifted[:, 1:, backward] = x[:, :-1, backward]
    shifted[:, :-1, forward] = x[:, 1:, forward]
    return shifted.reshape(-1, length, width)


def token_mask(mask: torch.Tensor, tiled: bool) -> torch.Tensor:
    """Frame mask (B, F) -> mask of the 4F selected tokens (B, 4F): tiled (token j <- frame j % F,
    the reference's) or per frame (token j <- frame j // 4)."""
    if tiled:
        return mask.repeat(1, TOKENS_PER_FRAME)
    return mask.repeat_interleave(TOKENS_PER_FRAME, dim=1)


def frame_weights(cosine: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The logits' frame weights: softmax_f(4 c_f / ||c||) over kept frames; cosine (..., F), mask broadcastable."""
    kept = cosine * mask
    return masked_softmax(F.normalize(kept, dim=-1), mask, FRAME_TEMPERATURE)


class TS2Net(Teacher):
    name: ClassVar[str] = "ts2net"

    def __init__(self, clip: CLIP, max_words: int, max_frames: int, temporal_layers: int = 4,
                 mask_padding: bool = False, noisy_selection: bool = False, token_shift: bool = False) -> None:
        super().__init__()
        visual = clip.visual
        if (not isinstance(visual, VisionTransformer) or visual.attn_pool is not None or visual.proj is None
                or visual.pool_type != "tok" or visual.final_ln_after_pool
                or not getattr(visual.transformer, "batch_first", True)):
            raise ParamsError("the TS2-Net teacher needs a CLIP ViT image tower as OpenAI's (class-token "
                              f"pooling, projection), got {type(visual).__name__}")
        self.clip = clip
        self.mask_padding = mask_padding
        self.noisy_selection = noisy_selection
        self.token_shift = token_shift
        self.temporal = TemporalTransformer(clip, temporal_layers)
        self.token_scorer = TokenScorer(clip_width(clip))

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state = {k: v for k, v in rename_prefixes(state, REFERENCE_PREFIXES).items() if k not in UNUSED_KEYS}
        shifted = [k for k in SHIFTED_ATTENTION_KEYS if k in state]
        if self.token_shift:  # TS2-Net's own loader: the wrapped attention is the layer's attention
            return {k.replace(".attn.net.", ".attn.") if k in shifted else k: v for k, v in state.items()}
        if shifted:
            ours = self.state_dict()
            kept = [k.replace(".attn.net.", ".attn.") for k in shifted]
            kept = [k for k in kept if k not in state and k in ours]
            log.warning("TS2-Net checkpoint: ignoring %s as TeachCLIP does; keeping the backbone's own %s",
                        shifted, kept)
            state = {k: v for k, v in state.items() if k not in shifted}
            state.update({k: ours[k] for k in kept})
        return state

    def encode_text(self, tokens: torch.Tensor) -> Features:
        sentence, _ = encode_text_tokens(self.clip, tokens)
        return {"sentence": F.normalize(sentence, dim=-1)}

    def frame_tokens(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Frames (B, F, 3, H, W), uint8 or normalized, -> every projected token of every frame (B*F, 1 + P, D).

        Padded slots are all-zero images in normalized space (`frames_to_images`)."""
        num_frames = frames.shape[1]
        images = frames_to_images(frames, mask)
        visual = self.clip.visual
        x = visual.conv1(images).flatten(2).transpose(1, 2)  # (N, P, W)
        x = torch.cat([visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
        x = visual.ln_pre(x + visual.positional_embedding.to(x.dtype))
        for layer, block in enumerate(visual.transformer.resblocks):
            if self.token_shift and layer in SHIFT_LAYERS:
                x = x + block.ls_1(block.attention(shift_tokens(block.ln_1(x), num_frames)))
                x = x + block.ls_2(block.mlp(block.ln_2(x)))
            else:
                x = block(x)
        return visual.ln_post(x) @ visual.proj

    def temporal_frames(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Selected tokens (B, 4F, D) -> each frame's class-token output of the seqTransf head (B, F, D)."""
        batch, length, _ = tokens.shape
        head = self.temporal
        positions = torch.arange(length, device=tokens.device) % head.frame_position_embeddings.num_embeddings
        x = tokens + head.frame_position_embeddings(positions).unsqueeze(0)
        keys = token_mask(mask, tiled=not self.mask_padding).to(tokens.dtype)
        attn_mask = ((1.0 - keys) * TEMPORAL_MASK_VALUE).unsqueeze(1).expand(batch, length, length)
        attn_mask = attn_mask.repeat_interleave(head.transformer.resblocks[0].attn.num_heads, dim=0)
        x = head.transformer(x, attn_mask=attn_mask) + tokens
        return x[:, ::TOKENS_PER_FRAME]

    def encode_video(self, frames: torch.Tensor, mask: torch.Tensor) -> Features:
        batch, num_frames = frames.shape[:2]
        tokens = self.frame_tokens(frames, mask)
        selected = select_tokens(tokens, self.token_scorer(tokens), noisy=self.noisy_selection)
        selected = selected.reshape(batch, num_frames * TOKENS_PER_FRAME, -1)
        return {"frames": F.normalize(self.temporal_frames(selected, mask), dim=-1), "mask": mask}

    def scoring_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The frames the logits' softmax keeps: (4f) % F's flag (the reference's), or the mask itself."""
        if self.mask_padding:
            return mask
        return token_mask(mask, tiled=True)[:, ::TOKENS_PER_FRAME]

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        cosine = torch.einsum("td,vfd->tvf", text["sentence"], video["frames"])  # (T, V, F)
        weights = frame_weights(cosine, self.scoring_mask(video["mask"]).to(cosine.dtype).unsqueeze(0))
        return self.clip.logit_scale.exp() * (weights * cosine).sum(dim=-1)

    def relevance(self, text: Features, video: Features) -> torch.Tensor:
        cosine = torch.einsum("bd,bfd->bf", text["sentence"], video["frames"])
        return masked_softmax(cosine, video["mask"] if self.mask_padding else None)
