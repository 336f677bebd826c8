"""Checkpoint files: written atomically, read back with a clear error when keys do not fit."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import CheckpointError
from ..files import atomic_path

PICKLE_MARK = b"\x80"  # the protocol opcode every pickle of protocol 2 or later starts with


@runtime_checkable
class AdaptsStateDict(Protocol):
    """A model that reads the reference code's files (a teacher, the student): their keys renamed to its own."""

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


def save_checkpoint(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary file beside `path`, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load on the CPU, tensors and plain containers only (a .safetensors file: its tensors);
    CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if not zipfile.is_zipfile(path) and not head.startswith(PICKLE_MARK):
        size = path.stat().st_size
        raise CheckpointError(f"{path}: not a checkpoint: torch.save writes a zip archive or a pickle, this file "
                              f"({size} bytes) starts with {head!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:300]})") from err


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file (no pickle); CheckpointError naming it when it is not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot be read as safetensors ({' '.join(str(err).split())[:300]})") from err


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a state dict (or a training checkpoint's "model" or "state_dict" entry) into `model`, strictly.

    A model with `adapt_state_dict` (a teacher or student that reads the reference code's files)
    renames the keys first and drops, by name, the keys the reference itself ignores. Returns the
    whole checkpoint. Missing or unexpected keys and wrong shapes raise CheckpointError naming the
    file, the keys and both shapes; nothing is loaded then.
    """
    checkpoint = read_checkpoint(path)
    state: Any = checkpoint  # what the file holds, checked below
    if isinstance(checkpoint, dict):  # tclib's training checkpoints hold "model"; X-Pool's trainer "state_dict"
        state = checkpoint.get("model", checkpoint.get("state_dict", checkpoint))
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    as_read = state
    if isinstance(model, AdaptsStateDict):  # a released checkpoint may use other key names
        state = model.adapt_state_dict(state)
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    wrong_shape = sorted(k for k in set(ours) & set(state) if ours[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        in_file = file_key_names(model, as_read) if isinstance(model, AdaptsStateDict) else {}
        unexpected = sorted(in_file.get(k, k) for k in unexpected)  # as the file names them
        wrong_shape = [f"{in_file[k]} {tuple(state[k].shape)} (model {k} {tuple(ours[k].shape)})" if k in in_file
                       else f"{k} {tuple(state[k].shape)} (model {tuple(ours[k].shape)})" for k in wrong_shape]
        raise CheckpointError(f"{path}: does not fit {type(model).__name__}: "
                              + describe_key_mismatch(missing, unexpected, wrong_shape))
    model.load_state_dict(state)
    return checkpoint


def file_key_names(model: AdaptsStateDict, state: dict[str, torch.Tensor]) -> dict[str, str]:
    """{our name: the file's name} for every key that `model.adapt_state_dict` renames on its own."""
    names = {}
    for key, value in state.items():
        adapted = list(model.adapt_state_dict({key: value}))
        if len(adapted) == 1 and adapted[0] != key:
            names[adapted[0]] = key
    return names


def describe_key_mismatch(missing: list[str], unexpected: list[str], wrong_shape: list[str]) -> str:
    """'missing keys [...] (N in all); unexpected keys [...]; wrong shapes [...]' (the first five of each)."""
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape)):
        if keys:
            parts.append(f"{label} {keys[:5]}{' ...' if len(keys) > 5 else ''} ({len(keys)} in all)")
    return "; ".join(parts)
