"""What fp32 matrix products run in: TF32 on CUDA's tensor cores while a model trains (`tf32`), full
float32 where the numbers must be exact to float32 (the teachers' scores, evaluation)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def matmul_precision(tf32: bool) -> Iterator[None]:
    """fp32 matrix products and convolutions in TF32 inside (with `tf32`) or in full float32; the
    settings of before after. Host-side flags: switching them waits for nothing."""
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


@contextlib.contextmanager
def full_float32(device_type: str) -> Iterator[None]:
    """Float32 without shortcuts inside, whatever the caller runs under: no autocast, no TF32."""
    with torch.autocast(device_type, enabled=False), matmul_precision(False):
        yield
