"""Caption-video pairs over a frame source (a frame cache or decoding on the fly), as a torch Dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tclib.data.framecache import FrameCache, FrameSource
from tclib.errors import DataError

__all__ = ["BatchReads", "PairDataset"]


class PairDataset(Dataset):
    """Item ``i`` pairs caption ``i`` with the frames of video ``video_ids[i]``.

    Args:
        captions: one caption per item.
        video_ids: the video of each caption (a video may appear in several items).
        cache: the frame source holding every video: a :class:`tclib.data.FrameCache` or a
            :class:`tclib.data.onthefly.DecodedFrames` (which decodes each item when it is read).
        tokenize: maps a list of N captions to a LongTensor (N, L); called once, here.

    Items are dicts: tokens LongTensor (L,), frames uint8 tensor (F, 3, S, S), frame_mask
    LongTensor (F,), caption_index int, video_index int (the video's row in the source).
    """

    def __init__(
        self,
        captions: Sequence[str],
        video_ids: Sequence[str],
        cache: FrameSource,
        tokenize: Callable[[list[str]], torch.Tensor],
    ) -> None:
        captions = [str(c) for c in captions]
        video_ids = [str(v) for v in video_ids]
        if len(captions) != len(video_ids):
            raise DataError(f"{len(captions)} captions but {len(video_ids)} video ids")
        for caption, vid in zip(captions, video_ids, strict=True):
            if not caption.strip():
                raise DataError(f"empty caption for {vid}")
        self.captions = captions
        self.video_ids = video_ids
        self.cache = cache
        self.video_index = [cache.index_of(v) for v in video_ids]
        tokens = tokenize(captions) if captions else torch.zeros(0, 0, dtype=torch.long)
        tokens = torch.as_tensor(tokens)
        if tokens.ndim != 2 or tokens.shape[0] != len(captions):
            raise DataError(
                f"tokenize returned shape {tuple(tokens.shape)} for {len(captions)} captions; expected (N, L)"
            )
        self.tokens = tokens.long()

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> dict:
        row = self.video_index[i]
        frames, mask = self.cache.get(self.video_ids[i])  # one read (one decode on the fly): new arrays
        return {
            "tokens": self.tokens[i],
            "frames": torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8)),
            "frame_mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64)),
            "caption_index": i,
            "video_index": row,
        }

    @property
    def reads_batches(self) -> bool:
        """True when whole batches are best read at once: a frame cache (one read per video, straight
        into the batch's array). Decoding on the fly reads item by item, in DataLoader workers."""
        return isinstance(self.cache, FrameCache)

    def batch(self, indices: Sequence[int]) -> dict:
        """Items `indices` collated, as a DataLoader collates them: tokens (B, L), frames uint8
        (B, F, 3, S, S), frame_mask (B, F), caption_index (B,), video_index (B,). Each video's
        frames are read from the cache file straight into the batch's array (one copy), which in a
        DataLoader worker lies in shared memory (the training process takes it without a copy)."""
        cache = self.cache
        if not isinstance(cache, FrameCache):
            raise TypeError(f"batch() reads from a frame cache (see reads_batches), not {type(cache).__name__}")
        items = np.asarray(indices, dtype=np.int64)
        rows = np.asarray(self.video_index, dtype=np.int64)[items]
        frames = batch_tensor((len(rows), *cache.frames.shape[1:]), torch.uint8)
        cache.frames_of(rows, out=frames.numpy())
        return {
            "tokens": self.tokens[torch.from_numpy(items)],
            "frames": frames,
            "frame_mask": torch.from_numpy(cache.mask_of(rows).astype(np.int64, copy=False)),
            "caption_index": torch.from_numpy(items),
            "video_index": torch.from_numpy(rows),
        }


def batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialized tensor for a batch: in shared memory inside a DataLoader worker (as the default
    collation makes its batches there), so that handing it to the training process copies nothing."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel, device="cpu")
    return torch.empty(0, dtype=dtype).new(storage).view(shape)


class BatchReads(Dataset):
    """A PairDataset indexed by whole batches (a list of item indices gives a collated batch), for a
    DataLoader with `batch_size=None` and a batch sampler: each worker reads a batch at once, and
    `extras` of it."""

    def __init__(self, pairs: PairDataset, extras: Callable[[dict], dict] | None = None) -> None:
        self.pairs = pairs
        self.extras = extras  # more entries of a batch, read with it (the teachers' cached rows)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, indices: Sequence[int]) -> dict:
        batch = self.pairs.batch(indices)
        return {**batch, **self.extras(batch)} if self.extras else batch
