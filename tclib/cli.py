"""Command line: `tclib reproduce params/<exp>.yaml` runs the notebooks of the pipeline with papermill.

Each notebook runs with the validated params as papermill parameters; the executed copies go to
results/<exp>/notebooks/. Stages whose outputs are current are skipped inside the notebooks, so a
rerun after an interruption picks up where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .errors import TclibError
from .params import load_params

log = logging.getLogger("tclib")

DEFAULT_NOTEBOOKS = Path("notebooks")


def reproduce(params_file: str, notebooks_dir: Path = DEFAULT_NOTEBOOKS, overrides: dict | None = None) -> Path:
    """Run every notebooks/NN_*.ipynb in order for one params file; returns results/<exp>/."""
    import papermill

    params = load_params(params_file, overrides)
    notebooks = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise TclibError(f"no notebooks NN_*.ipynb found in {notebooks_dir}")
    out_dir = params.exp_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks:
        start = time.perf_counter()
        log.info("running %s", notebook.name)
        papermill.execute_notebook(str(notebook), str(out_dir / notebook.name), parameters=params.to_dict(),
                                   kernel_name="python3", progress_bar=False, cwd=str(Path.cwd()))
        log.info("%s done in %.0f s", notebook.name, time.perf_counter() - start)
    return params.exp_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tclib", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("reproduce", help="run the pipeline notebooks for one params file")
    run.add_argument("params", help="params/<exp>.yaml")
    run.add_argument("--notebooks", type=Path, default=DEFAULT_NOTEBOOKS, help="folder of NN_*.ipynb")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        exp_dir = reproduce(args.params, args.notebooks)
    except TclibError as err:
        print(f"tclib: error: {err}", file=sys.stderr)
        return 2
    print(f"results in {exp_dir}/ (table.md, metrics.csv, attention.png, notebooks/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
