"""The demo's stand-in for CLIP's web pretraining: contrastive training of a small CLIP on synthetic
image-caption pairs (independent of the synthetic videos), so that teachers and students start
from the same pretrained weights, as in the paper."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .data import render_image_caption_pairs, resize_center_crop
from .models import CLIP4Clip, Tokenizer, load_clip
from .models.checkpoint import save_checkpoint
from .params import Params
from .teaching import ContrastiveObjective
from .train import TrainConfig, seed_everything, train

MAX_PAIRS = 8192  # distinct image-caption pairs; longer pretraining repeats them


class ImageCaptionDataset(Dataset):
    """Single images as one-frame videos, so the backbone pretrains in the same loop as the models."""

    def __init__(self, images: np.ndarray, tokens: torch.Tensor) -> None:
        self.images = torch.from_numpy(images).unsqueeze(1)  # (N, 1, 3, S, S)
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict:
        return {"tokens": self.tokens[i], "frames": self.images[i], "frame_mask": torch.ones(1, dtype=torch.long),
                "caption_index": i, "video_index": i}


def pretrain_clip(P: Params, image_size: int, directory: Path) -> dict:
    """Pretrain P.clip_model (from P.clip_pretrained) for P.pretrain_steps steps; writes
    `directory/clip.pt` (the CLIP's state) and the run's history under `directory/run`; returns
    what it did (pairs, epochs)."""
    pairs = min(MAX_PAIRS, P.pretrain_steps * P.pretrain_batch_size)
    images, captions = render_image_caption_pairs(pairs, size=P.synthetic_frame_size, seed=P.synthetic_seed + 1)
    images = np.stack([resize_center_crop(image, image_size) for image in images])
    dataset = ImageCaptionDataset(images, Tokenizer(P.max_words)(captions))
    seed_everything(P.synthetic_seed)
    model = CLIP4Clip(load_clip(P.clip_model, P.clip_pretrained), temporal="meanP")
    epochs = max(1, math.ceil(P.pretrain_steps * P.pretrain_batch_size / pairs))
    config = TrainConfig(epochs=epochs, batch_size=P.pretrain_batch_size, lr=P.pretrain_lr, clip_lr_scale=1.0,
                         seed=P.synthetic_seed, device=P.device)
    model = train(model, dataset, ContrastiveObjective(), config, directory / "run", desc="pretrain backbone")
    save_checkpoint(model.clip.state_dict(), directory / "clip.pt")
    return {"pairs": pairs, "epochs": epochs}
