"""X-CLIP teacher (Ma et al., ACM MM 2022): multi-grained contrast with attention over similarity matrices.

Features: the sentence (end-of-text token) and every word position of the text tower; the raw
CLIP frame features, and a video vector from CLIP4Clip's seqTransf head + mean pooling. Four
similarities, each scaled by CLIP's logit scale, are averaged:

- video-sentence: s W_g v
- video-word:     sum_w a_w (w . v), attention a = softmax over words of (w . v)/0.01, mixed by W_word
- sentence-frame: sum_f a_f (s . f), attention over frames of (s . f)/0.01, mixed by W_frame
- frame-word:     the (words x frames) matrix w W_l f is reduced over words then frames, and over
                  frames then words, each step an attention at 0.01 mixed by a learned square
                  matrix; the two results are averaged.
All square matrices start as identities. As in the reference, word positions are not masked
(padding included, so W_word is max_words x max_words).

Frame-text relevance (what TeachCLIP's fine-grained teaching uses): softmax over frames of the
sentence-frame cosine, at temperature 1, over every frame slot as in the reference (padded slots
included; `mask_padding=True` gives them zero weight instead).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from torch import nn

from ..afa import masked_softmax
from ..backbone import clip_width, encode_frames, encode_text_tokens
from ..student import TemporalTransformer, masked_mean_pool, rename_prefixes
from .base import Features, Teacher

ATTENTION_TEMPERATURE = 1e-2

# Released X-CLIP checkpoints (as TeachCLIP distributes them) name the seqTransf head differently;
# the CLIP towers (clip.*) and the mixing matrices already have our names.
REFERENCE_PREFIXES = {"frame_position_embeddings.": "temporal.frame_position_embeddings.",
                      "transformerClip.": "temporal.transformer."}


def _attend(scores: torch.Tensor, dim: int, mixing: torch.Tensor) -> torch.Tensor:
    """X-CLIP's attention over a similarity matrix: sum over `dim` of (softmax(scores/0.01) @ mixing) * scores."""
    weights = torch.softmax(scores / ATTENTION_TEMPERATURE, dim=dim).movedim(dim, -1) @ mixing
    return (weights.movedim(-1, dim) * scores).sum(dim=dim)


class XCLIP(Teacher):
    name: ClassVar[str] = "xclip"

    def __init__(self, clip: CLIP, max_words: int, max_frames: int, temporal_layers: int = 4,
                 mask_padding: bool = False) -> None:
        super().__init__()
        dim = clip_width(clip)
        self.clip = clip
        self.mask_padding = mask_padding
        self.temporal = TemporalTransformer(clip, temporal_layers)
        self.global_mat_weight = nn.Parameter(torch.eye(dim))
        self.word_logit_weight = nn.Parameter(torch.eye(max_words))
        self.frame_logit_weight = nn.Parameter(torch.eye(max_frames))
        self.local_mat_weight = nn.Parameter(torch.eye(dim))
        self.frame_mat_weight = nn.Parameter(torch.eye(max_frames))
        self.word_mat_weight = nn.Parameter(torch.eye(max_words))
        self.frame_mat_weight2 = nn.Parameter(torch.eye(max_frames))
        self.word_mat_weight2 = nn.Parameter(torch.eye(max_words))

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return rename_prefixes(state, REFERENCE_PREFIXES)

    def encode_text(self, tokens: torch.Tensor) -> Features:
        sentence, words = encode_text_tokens(self.clip, tokens)
        return {"sentence": F.normalize(sentence, dim=-1), "words": F.normalize(words, dim=-1)}

    def encode_video(self, frames: torch.Tensor, mask: torch.Tensor) -> Features:
        raw = encode_frames(self.clip, frames, mask)
        video = masked_mean_pool(self.temporal(raw, mask), mask)
        return {"video": video, "frames": F.normalize(raw, dim=-1), "mask": mask}

    def similarity(self, text: Features, video: Features) -> torch.Tensor:
        sentence, words = text["sentence"], text["words"]  # (T, D), (T, L, D)
        video_vec, frames = video["video"], video["frames"]  # (V, D), (V, F, D)
        scale = self.clip.logit_scale.exp()

        video_sentence = sentence @ self.global_mat_weight @ video_vec.t()  # (T, V)
        word_video = torch.einsum("tld,vd->tlv", words, video_vec)  # (T, L, V)
        video_word = _attend(word_video, 1, self.word_logit_weight)  # (T, V)
        sentence_frame = torch.einsum("td,vfd->tvf", sentence, frames)  # (T, V, F)
        sentence_frame = _attend(sentence_frame, 2, self.frame_logit_weight)  # (T, V)
        fine = torch.einsum("tld,de,vfe->tlvf", words, self.local_mat_weight, frames)  # (T, L, V, F)
        word_level = _attend(fine, 1, self.word_mat_weight)  # (T, V, F)
        frame_level = _attend(fine, 3, self.frame_mat_weight)  # (T, L, V)
        frame_word = (_attend(word_level, 2, self.frame_mat_weight2)
                      + _attend(frame_level, 1, self.word_mat_weight2)) / 2  # (T, V)
        return scale * (video_sentence + video_word + sentence_frame + frame_word) / 4

    def relevance(self, text: Features, video: Features) -> torch.Tensor:
        cosine = torch.einsum("bd,bfd->bf", text["sentence"], video["frames"])
        return masked_softmax(cosine, video["mask"] if self.mask_padding else None)
