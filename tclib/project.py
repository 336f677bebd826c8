"""The project root: what relative paths in params files and notebooks are relative to.

A params file says `data_root: data/msrvtt` and `results_dir: results`; those paths mean the same
folders whether the kit runs from the command line in the project, from a notebook in `notebooks/`,
or from an executed copy in `results/<exp>/notebooks/` (where JupyterLab starts its kernel). The
root is, in this order: the folder named by the environment variable TCLIB_ROOT; the nearest folder
at or above the current one that holds both `params/` and `notebooks/` (a checkout of the kit, or a
project laid out like it); the checkout this tclib is installed from (`pip install -e .`, as
`make` does), so that papermill run from any other folder still finds `params/demo.yaml`; the
current folder.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "TCLIB_ROOT"


def _is_project(folder: Path) -> bool:
    return (folder / "params").is_dir() and (folder / "notebooks").is_dir()


_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
KIT_CHECKOUT: Path | None = _PACKAGE_PARENT if _is_project(_PACKAGE_PARENT) else None


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The project root, found from `start` (default: the current folder); an absolute path."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser().resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder
    return KIT_CHECKOUT or here


def resolve_path(value: str, root: str | os.PathLike | None = None) -> str:
    """`value` as an absolute path: as it is when absolute (after ~), else under the project root
    (or `root`); the empty string stays empty (it means "none" in params)."""
    if not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path(root or project_root()) / path)


def relative_to_root(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """`path` relative to the project root when it lies under it, else absolute: how the kit writes
    a path into a file that is read again from another folder."""
    path, root = Path(path).resolve(), Path(root or project_root())
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
