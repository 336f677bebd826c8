"""Planning a run: whether it fits a GPU, the smallest setting that would, and `tclib memory`'s table."""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from ..errors import ParamsError
from .estimate import CUDA_CONTEXT_BYTES, GiB, TrainingSetup, estimate_params_memory


def parse_bytes(text: str) -> int:
    """'80GB', '80 GiB', '81920MB', '85e9' -> bytes. Units are binary, as nvidia-smi counts (an "80GB"
    H100 has 80 GiB less a little): KB = KiB = 2**10, MB = 2**20, GB = 2**30, TB = 2**40."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]?)(i?B)?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise ParamsError(f"not a memory size: {text!r} (e.g. 80GB)")
    try:
        number = float(match.group(1))
    except ValueError:
        raise ParamsError(f"not a memory size: {text!r} (e.g. 80GB)") from None
    return int(number * 2 ** (10 * " KMGT".index(match.group(2).upper() or " ")))


def usable_bytes(gpu_bytes: int) -> int:
    """What tensors can use of a GPU of `gpu_bytes`: less the CUDA context and the allocator's slack."""
    return gpu_bytes - CUDA_CONTEXT_BYTES


def fitting_settings(params, gpu_bytes: int) -> list[str]:
    """The smallest change of each kind that makes the run fit, computed with the same estimate:
    grad_checkpointing, gpus, grad_accumulation; checkpointing with accumulation when none fits alone."""
    budget = usable_bytes(gpu_bytes)
    fits = lambda **changes: estimate_params_memory(params, **changes).peak <= budget  # noqa: E731
    found = []
    if not params.grad_checkpointing and fits(grad_checkpointing=True):
        found.append("grad_checkpointing: true")
    if params.teacher_mode == "cached":  # over several processes the teachers score from their cache
        found += [f"gpus: {n}" for n in [smallest(params, "gpus", fits)] if n]
    found += [f"grad_accumulation: {n}" for n in [smallest(params, "grad_accumulation", fits)] if n]
    if not found and not params.grad_checkpointing:
        n = smallest(params, "grad_accumulation", lambda **c: fits(grad_checkpointing=True, **c))
        found += [f"grad_checkpointing: true with grad_accumulation: {n}"] if n else []
    return found


def smallest(params, key: str, fits: Callable[..., bool]) -> int | None:
    """The smallest value of `key` (gpus or grad_accumulation) above the current one that splits
    batch_size evenly (batch_size a multiple of gpus × grad_accumulation) and fits; None if none does."""
    other = params.grad_accumulation if key == "gpus" else params.gpus
    for n in range(getattr(params, key) + 1, params.batch_size // other + 1):
        if params.batch_size % (n * other) == 0 and fits(**{key: n}):
            return n
    return None


def verdict(params, gpu_bytes: int) -> str | None:
    """None when training fits a GPU of `gpu_bytes`; else one line: what it needs and what would fit."""
    need = estimate_params_memory(params)
    budget = usable_bytes(gpu_bytes)
    if need.peak <= budget:
        return None
    options = fitting_settings(params, gpu_bytes)
    advice = f"; it fits with {' or '.join(options)}" if options else "; no single setting makes it fit"
    setup = need.setup
    return (f"training needs ~{need.peak / GiB:.1f} GiB per GPU ({setup.clip_model}, {setup.micro_batch} videos x "
            f"{setup.frames} frames per micro-batch, {setup.precision}), more than the {budget / GiB:.1f} GiB "
            f"usable of a {gpu_bytes / GiB:.1f} GiB GPU{advice}")


def gpu_memory(params) -> int | None:
    """The memory of the GPU the run would train on (device auto: the first GPU when there is one), or
    None when its device is not a CUDA GPU of this machine (the device checks say why)."""
    name = ("cuda" if torch.cuda.is_available() else "cpu") if params.device == "auto" else params.device
    try:
        device = torch.device(name)
    except RuntimeError:
        return None
    if device.type != "cuda" or not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count():
        return None
    try:
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    except (RuntimeError, AssertionError):  # a GPU that CUDA cannot open: the device checks say why
        return None


def memory_problems(params, gpu_bytes: int | None = None) -> list[str]:
    """The pre-flight's memory check: one line when training would not fit the GPU (`gpu_bytes`, or that
    of the run's CUDA device), none when it fits or no GPU is concerned."""
    gpu_bytes = gpu_bytes or gpu_memory(params)
    if gpu_bytes is None:
        return []
    try:
        line = verdict(params, gpu_bytes)
    except ParamsError:
        return []  # a clip_model the estimate does not cover: reported by the model checks when wrong
    return [f"params key 'batch_size': {line}"] if line else []


def describe(setup: TrainingSetup) -> str:
    """One line naming what the estimate is of."""
    teachers = f", teachers {'+'.join(setup.teachers)} ({setup.teacher_mode})" if setup.teachers else ""
    return (f"{setup.clip_model}, {setup.micro_batch} videos x {setup.frames} frames and {setup.words} words per "
            f"micro-batch (of {setup.gpu_batch or setup.micro_batch} per GPU, {setup.gpus} GPU(s)), {setup.precision}, "
            f"grad_checkpointing {'on' if setup.grad_checkpointing else 'off'}, {setup.temporal}"
            f"{' + AFA' if setup.afa else ''}{teachers}")


def report(params, gpu_bytes: int | None) -> tuple[list[str], bool]:
    """`tclib memory`'s lines (what the estimate is of, a table in GiB, the verdict) and whether it fits."""
    need = estimate_params_memory(params)
    lines = [f"memory per GPU: {describe(need.setup)}"]
    lines += [f"  {part:<26}{size / GiB:>9.2f} GiB" for part, size in need.rows()]
    if gpu_bytes is None:
        return lines + [f"needs ~{need.peak / GiB:.1f} GiB per GPU (--gpu-memory checks a GPU's size)"], True
    line = verdict(params, gpu_bytes)
    if line:
        return lines + [line], False
    return lines + [f"fits: ~{need.peak / GiB:.1f} GiB of the {usable_bytes(gpu_bytes) / GiB:.1f} GiB usable of a "
                    f"{gpu_bytes / GiB:.1f} GiB GPU"], True
