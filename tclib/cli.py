"""Command line: `tclib reproduce params/<exp>.yaml` runs the notebooks of the pipeline with papermill.

Each notebook runs with the validated params as papermill parameters; the executed copies go to
results/<exp>/notebooks/. Stages whose outputs are current are skipped inside the notebooks, so a
rerun after an interruption picks up where it stopped.

`tclib data check <dataset> <root>` reads every split of a data set, compares its counts with the
published ones and lists the video files that are missing or cannot be decoded (exit code 1 when
there are any, 2 on a bad annotation file).
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


def data_check(args: argparse.Namespace) -> int:
    """`tclib data check`: print the table of :func:`tclib.data.check_dataset` and the bad files."""
    from .data.check import check_dataset
    from .data.readers import coerce_options

    options = coerce_options(args.dataset, _parse_options(args.option))
    report = check_dataset(args.dataset, args.root, videos_dir=args.videos, splits=args.split,
                           decode=not args.no_decode, **options)
    table = report.table().astype(object).where(lambda t: t.notna(), "-")
    print(f"{report.dataset} at {report.root}")
    print(table.to_string(index=False))
    for split in report.splits:
        if split.note:
            print(f"note ({split.split}): {split.note}")
    if report.missing:
        print(f"\nmissing video files ({len(report.missing)}):")
        for path in report.missing:
            print(f"  {path}")
    if report.unreadable:
        print(f"\nunreadable video files ({len(report.unreadable)}):")
        for path, reason in report.unreadable.items():
            print(f"  {path}: {reason}")
    if report.ok:
        print("\nall video files present" + (" and readable" if report.decoded else " (not decoded)"))
    return 0 if report.ok else 1


def _parse_options(pairs: list[str] | None) -> dict[str, str]:
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TclibError(f"option {pair!r} is not KEY=VALUE")
        options[key.strip()] = value
    return options


def _run_reproduce(args: argparse.Namespace) -> int:
    exp_dir = reproduce(args.params, args.notebooks)
    print(f"results in {exp_dir}/ (table.md, metrics.csv, attention.png, notebooks/)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tclib", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("reproduce", help="run the pipeline notebooks for one params file")
    run.add_argument("params", help="params/<exp>.yaml")
    run.add_argument("--notebooks", type=Path, default=DEFAULT_NOTEBOOKS, help="folder of NN_*.ipynb")
    run.set_defaults(handler=_run_reproduce)

    data = commands.add_parser("data", help="data set tools")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    check = data_commands.add_parser(
        "check", help="count annotations per split and find missing or undecodable video files")
    check.add_argument("dataset", help="layout name, e.g. msrvtt (an unknown name lists the known ones)")
    check.add_argument("root", type=Path, help="the data set folder (annotations in it or in its Annotations/)")
    check.add_argument("--videos", type=Path, default=None,
                       help="folder of the video files (default: found under root)")
    check.add_argument("--split", nargs="+", action="extend", default=None, metavar="S",
                       help="splits to check (default: all splits of the data set)")
    check.add_argument("--no-decode", action="store_true", help="only check that the video files exist")
    check.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                       help="reader option, e.g. train_csv=MSRVTT_train.7k.csv (repeatable)")
    check.set_defaults(handler=data_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except TclibError as err:
        print(f"tclib: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
