"""The training loader: shuffled batches read in worker processes, pinned, and on the GPU a step ahead.

- The batches: a permutation of the training pairs per epoch, drawn from the run's generator exactly
  as a plain shuffling DataLoader draws it (`EpochBatches`), so the batches are the same for the
  same seed whatever the number of workers, and after a resume.
- A data set over a frame cache (`reads_batches`) is read a whole batch at a time (one read per
  video into the batch's array); others item by item and collated. Whatever the objective needs
  beside the frames (`extras`: the teachers' cached rows of the batch) is read in the same worker.
- Workers are persistent and prefetch; batches are pinned; `on_device` copies the next batch to the
  GPU on a side stream while the current step runs, so the step never waits for a copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, default_collate

from .data.dataset import BatchReads, PairDataset
from .distributed import world

Extras = Callable[[dict], dict]  # a collated batch -> more entries for it, read in the loader's workers

MAX_LOADER_WORKERS = 8  # the reference reads with 8 threads (num_thread_reader: 8)
PREFETCH_BATCHES = 2  # batches each worker reads ahead


def loader_workers(requested: int | str, device: torch.device) -> int:
    """The loader's worker processes: `requested`, or for "auto" on a GPU this process's share of the
    machine's cores less one for the training process itself, at most MAX_LOADER_WORKERS; on a CPU
    device "auto" is 0 (the cores compute, and batches are read between steps)."""
    if requested != "auto":
        return int(requested)
    if device.type != "cuda":
        return 0
    processes_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(MAX_LOADER_WORKERS, len(os.sched_getaffinity(0)) // processes_here - 1))


class EpochBatches(Sampler):
    """Each epoch a permutation of `size` items from `generator`, cut into batches. Per epoch it first
    draws one number, as a shuffling DataLoader given the same generator draws its workers' seed: the
    batches are those of `DataLoader(..., shuffle=True, generator=generator)`."""

    def __init__(self, size: int, batch_size: int, drop_last: bool, generator: torch.Generator) -> None:
        self.generator = generator
        self.batches = BatchSampler(RandomSampler(range(size), generator=generator), batch_size, drop_last)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        # drawn when the first batch is asked for: a DataLoader with workers opens an iterator it never reads
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        yield from self.batches


class RankSlices(Sampler):
    """This process's contiguous slice of each global batch (rank r: items r*b .. r*b+b-1), so that
    the gathered embeddings come back in the global batch's order."""

    def __init__(self, batches: EpochBatches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        rank, processes = world()
        for batch in self.batches:
            size = len(batch) // processes
            yield batch[rank * size:(rank + 1) * size]


class CollateWithExtras:
    """The default collation of items, then `extras` of the collated batch (in the worker)."""

    def __init__(self, extras: Extras | None) -> None:
        self.extras = extras

    def __call__(self, items: list[dict]) -> dict:
        batch = default_collate(items)
        return {**batch, **self.extras(batch)} if self.extras else batch


def training_loader(dataset: Dataset, batch_size: int, workers: int, generator: torch.Generator, pin: bool,
                    extras: Extras | None = None) -> DataLoader:
    """Shuffled batches of `dataset` in the order `generator` gives (see the module's docstring).
    Over several processes every one draws the same global batches and reads its own slice of each."""
    _, processes = world()
    size = dataset_size(dataset)
    epochs = EpochBatches(size, batch_size, processes > 1 or size > batch_size, generator)
    batches: Sampler = RankSlices(epochs) if processes > 1 else epochs
    options: dict[str, Any] = dict(num_workers=workers, pin_memory=pin, persistent_workers=workers > 0,
                                   prefetch_factor=PREFETCH_BATCHES if workers else None,
                                   generator=torch.Generator().manual_seed(0))  # the workers' seeds only
    if isinstance(dataset, PairDataset) and dataset.reads_batches:
        return DataLoader(BatchReads(dataset, extras), batch_size=None, sampler=batches, **options)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=CollateWithExtras(extras), **options)


def dataset_size(dataset: Dataset) -> int:
    """len(dataset); a TypeError, as len() gives, for a data set without a length (training reads by index)."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"a training data set needs a length: {type(dataset).__name__} has no len()")
    return len(dataset)


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors of a batch (in dicts and lists) on `device`, copied without blocking from pinned memory."""
    if torch.is_tensor(value):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: to_device(entry, device) for key, entry in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(entry, device) for entry in value)
    return value


def on_device(batches: Iterator[dict], device: torch.device) -> Iterator[dict]:
    """`batches` on `device`. On a GPU the next batch is copied on a side stream while the caller
    works on the current one; the compute stream waits for a batch's copy only when it uses it."""
    if device.type != "cuda":
        yield from (to_device(batch, device) for batch in batches)
        return
    copies = torch.cuda.Stream(device)
    ahead = None
    for batch in batches:
        with torch.cuda.stream(copies):
            batch = to_device(batch, device)
            copied = torch.cuda.Event()
            copied.record(copies)
        if ahead is not None:
            yield _ready(*ahead)
        ahead = batch, copied
    if ahead is not None:
        yield _ready(*ahead)


def _ready(batch: dict, copied: torch.cuda.Event) -> dict:
    """A batch copied on a side stream, made safe to use on the current stream."""
    current = torch.cuda.current_stream()
    current.wait_event(copied)
    for tensor in _tensors(batch):
        tensor.record_stream(current)  # its memory is not reused before the compute stream is done with it
    return batch


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if torch.is_tensor(value):
        yield value
    elif isinstance(value, dict):
        for entry in value.values():
            yield from _tensors(entry)
    elif isinstance(value, (list, tuple)):
        for entry in value:
            yield from _tensors(entry)
