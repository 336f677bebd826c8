"""Command line: `tclib reproduce params/<exp>.yaml` runs the notebooks of the pipeline with papermill.

The params are validated, written to results/<exp>/params.yaml, and each
notebook runs with `params` pointing at that file; the executed copies go to
results/<exp>/notebooks/, and what the notebooks publish (metrics.csv, table.md, attention.png, ...)
to results/<exp>/ (the kernels run with TCLIB_BATCH=1, see tclib.notebook). Stages whose outputs
are current are skipped inside the notebooks, so a rerun after an interruption picks up where it
stopped. While a notebook runs, its log lines and
progress bars are shown in the terminal and written to results/<exp>/logs/reproduce-<time>.log;
when one fails, the run stops and the last lines name the notebook, the error raised in it, and
that log file, which holds the full traceback (exit code 1). Before anything runs, the params are
checked (tclib.preflight: values, model names, files, checkpoint keys): every problem is one line,
exit code 2, nothing written. One run at a time works in an experiment folder (see tclib.lock);
`--wait` queues behind the run holding it.

`tclib tables` runs notebooks/07_paper_tables.ipynb: every experiment's metrics beside the published
numbers of results/paper_numbers.csv, in results/tables/ (tables.md, comparison.csv, the executed
notebook, logs/).

`tclib clean [params files]` removes the stage folders under results/ that none of the params
files (default: params/*.yaml) refers to any more, and says how much space that frees.

`tclib migrate [params files]` adopts the stage folders an earlier tclib made for those params
(before identities were location-independent), in place or after a move, and lists them (tclib.migrate).

`tclib index OUT --videos DIR --params P` encodes a collection of videos (or moments) with a trained
student; `tclib search OUT "query"` searches it; `tclib export bigfile` writes features in TeachCLIP's
BigFile layout (tclib.search).

`tclib memory params/<exp>.yaml --gpu-memory 80GB` prints what a training step needs per GPU
(tclib.memory), part by part, and whether it fits, or which settings would make it fit (exit code 1
when it does not fit).

`tclib data check <dataset> <root>` reads every split of a data set, compares its counts with the
published ones and lists the video files that are missing or cannot be decoded (exit code 1 when
there are any, 2 on a bad annotation file).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from .errors import StageError, TclibError
from .files import temporary_path, write_text
from .lock import experiment_lock
from .progress import BATCH_ENV
from .project import ROOT_ENV, project_root, relative_to_root, resolve_path
from .runlog import LOG_FORMAT, Console, Lines, run_log

log = logging.getLogger("tclib")

# What a command needs beyond the parser (params, preflight, the models) is imported by its handler, so
# that `tclib --help` and a mistyped command answer without loading torch.

DEFAULT_NOTEBOOKS = Path("notebooks")
RUN_PARAMS = "params.yaml"  # results/<exp>/params.yaml: the params of the last run, which its notebooks read
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def reproduce(params_file: str, notebooks_dir: Path = DEFAULT_NOTEBOOKS, wait: bool = False) -> Path:
    """Run every notebooks/NN_*.ipynb in order for one params file; returns results/<exp>/.

    Holds the experiment's lock for the whole run (LockedError, or with `wait` queue behind the
    holder). A failing notebook raises StageError after its executed copy is saved.
    """
    from . import preflight
    from .params import load_params

    params = load_params(params_file)
    notebooks = experiment_notebooks(Path(resolve_path(str(notebooks_dir))))
    if not notebooks:
        raise TclibError(f"no notebooks NN_*.ipynb found in {notebooks_dir}")
    preflight.check(params, source=str(params_file))  # every problem at once, before anything is written
    with experiment_lock(params.exp_dir, wait=wait), run_log(params.exp_dir / "logs") as console:
        out_dir = params.exp_dir / "notebooks"
        out_dir.mkdir(parents=True, exist_ok=True)
        run_params = write_run_params(params_file, params.exp_dir)
        environment = {BATCH_ENV: "1", ROOT_ENV: str(project_root())}
        for notebook in notebooks:
            start = time.perf_counter()
            log.info("running %s", notebook.name)
            _execute(notebook, out_dir / notebook.name, {"params": relative_to_root(run_params)}, environment,
                     console)
            log.info("%s done in %.0f s", notebook.name, time.perf_counter() - start)
    return params.exp_dir


def experiment_notebooks(folder: Path) -> list[Path]:
    """The NN_*.ipynb of `folder` that run for one experiment, in order: all but those whose metadata
    says `"tclib": {"scope": "project"}` (07_paper_tables reads every experiment; `tclib tables` runs it)."""
    return [path for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")) if _scope(path) != "project"]


def _scope(notebook: Path) -> str:
    try:
        metadata = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError) as err:
        raise TclibError(f"cannot read notebook {notebook}: {err}") from err
    return metadata.get("tclib", {}).get("scope", "experiment")


PAPER_TABLES_NOTEBOOK = "07_paper_tables.ipynb"


def tables(notebooks_dir: Path = DEFAULT_NOTEBOOKS, out_dir: str = "results/tables") -> Path:
    """Run 07_paper_tables over every experiment: results/tables/tables.md, comparison.csv and the
    executed notebook (in notebooks/, as an experiment's); returns the folder."""
    notebook = Path(resolve_path(str(notebooks_dir))) / PAPER_TABLES_NOTEBOOK
    if not notebook.is_file():
        raise TclibError(f"notebook not found: {notebook}")
    out = Path(resolve_path(out_dir))
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    with run_log(out / "logs", "tables") as console:
        log.info("running %s", notebook.name)
        _execute(notebook, out / "notebooks" / notebook.name, {"out": relative_to_root(out)},
                 {BATCH_ENV: "1", ROOT_ENV: str(project_root())}, console)
    return out


def write_run_params(params_file: str, exp_dir: Path) -> Path:
    """results/<exp>/params.yaml: the params file's mapping, which the notebooks of this run read (an
    executed notebook run again in JupyterLab reads it too)."""
    from .params import read_params_file

    values = read_params_file(params_file)
    path = exp_dir / RUN_PARAMS
    header = f"# The params of the last `tclib reproduce` of this experiment: {params_file}\n"
    write_text(path, header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
    return path


def _execute(notebook: Path, executed: Path, parameters: dict, environment: dict[str, str],
             console: Console) -> None:
    """papermill into a temporary beside `executed`, renamed onto it when papermill returns or fails."""
    import papermill

    tmp = temporary_path(executed)
    stdout, stderr = Lines(console), Lines(console)
    try:
        with _environment(environment):
            papermill.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name="python3",
                                       progress_bar=False, cwd=str(Path.cwd()), stdout_file=stdout, stderr_file=stderr)
        os.replace(tmp, executed)
    except Exception as err:  # a cell raised, the kernel died, the disk is full...: say which, keep the rest
        stdout.finish()
        stderr.finish()
        if _is_notebook(tmp):  # the failed notebook as papermill saved it: the user opens it to see why
            os.replace(tmp, executed)
        ename, evalue, lines = _error_of(err)
        console.write_log(f"{notebook.stem} failed, traceback:\n" + "\n".join(lines))
        failure = StageError(notebook.stem, ename, evalue, str(executed), str(console.log_path))
        console.write_log(f"tclib: error: {failure}")
        raise failure from err
    finally:
        stdout.finish()
        stderr.finish()
        tmp.unlink(missing_ok=True)


def _error_of(err: Exception) -> tuple[str, str, list[str]]:
    """(exception type, message, traceback lines): the notebook's own error when a cell raised."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        lines = [_ANSI.sub("", entry) for entry in err.traceback]
        return err.ename, err.evalue, "\n".join(lines).splitlines()
    return type(err).__name__, str(err), "".join(traceback.format_exception(err)).splitlines()


def _is_notebook(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")).get("cells"), list)
    except (OSError, ValueError, AttributeError):
        return False


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (read by the kernel papermill starts); restore them after."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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


def _run_memory(args: argparse.Namespace) -> int:
    from .memory import gpu_memory, parse_bytes, report
    from .params import load_params

    params = load_params(args.params)
    lines, fits = report(params, parse_bytes(args.gpu_memory) if args.gpu_memory else gpu_memory(params))
    print("\n".join(lines))
    return 0 if fits else 1


def _params_files(given: list[str]) -> list[str]:
    """The params files given, else every params/*.yaml of the project."""
    params = project_root() / "params"
    files = given or sorted(str(p) for p in params.glob("*.yaml"))
    if not files:
        raise TclibError(f"no params files given, and none in {params}/")
    return files


def _run_clean(args: argparse.Namespace) -> int:
    from .clean import clean, format_report

    print(format_report(clean(_params_files(args.params), dry_run=args.dry_run), args.dry_run))
    return 0


def _run_migrate(args: argparse.Namespace) -> int:
    from .migrate import format_report, migrate

    report = migrate(_params_files(args.params), dry_run=args.dry_run)
    print(format_report(report, args.dry_run))
    return 1 if report.problems else 0


def _run_reproduce(args: argparse.Namespace) -> int:
    exp_dir = reproduce(args.params, args.notebooks, wait=args.wait)
    print(f"results in {exp_dir}/ (table.md, metrics.csv, attention.png, notebooks/)")
    return 0


def _run_tables(args: argparse.Namespace) -> int:
    out = tables(args.notebooks)
    print(f"tables in {out}/ (tables.md, comparison.csv, notebooks/{PAPER_TABLES_NOTEBOOK})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tclib", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("reproduce", help="run the pipeline notebooks for one params file")
    run.add_argument("params", help="params/<exp>.yaml")
    run.add_argument("--notebooks", type=Path, default=DEFAULT_NOTEBOOKS, help="folder of NN_*.ipynb")
    run.add_argument("--wait", action="store_true",
                     help="when another run holds this experiment's folder, wait for it instead of stopping")
    run.set_defaults(handler=_run_reproduce)

    paper = commands.add_parser("tables", help="every experiment's metrics beside the published numbers "
                                               "(runs notebooks/07_paper_tables.ipynb into results/tables/)")
    paper.add_argument("--notebooks", type=Path, default=DEFAULT_NOTEBOOKS, help="folder of 07_paper_tables.ipynb")
    paper.set_defaults(handler=_run_tables)

    tidy = commands.add_parser("clean", help="remove the stage folders under results/ that no params file refers to")
    tidy.add_argument("params", nargs="*", help="params files whose stages are kept (default: params/*.yaml)")
    tidy.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    tidy.set_defaults(handler=_run_clean)

    move = commands.add_parser("migrate", help="adopt the stage folders an earlier tclib made for these params "
                                                "(exit code 1 when a stage has several candidates)")
    move.add_argument("params", nargs="*", help="params files whose stages are adopted (default: params/*.yaml)")
    move.add_argument("--dry-run", action="store_true", help="list what would be adopted, rename nothing")
    move.set_defaults(handler=_run_migrate)

    memory = commands.add_parser("memory", help="a training step's memory per GPU, estimated from the params "
                                                 "(exit code 1 when it does not fit the GPU)")
    memory.add_argument("params", help="params/<exp>.yaml (its files need not exist)")
    memory.add_argument("--gpu-memory", metavar="SIZE", default=None,
                        help="the GPU's memory, e.g. 80GB (binary units; default: the params' CUDA device, if any)")
    memory.set_defaults(handler=_run_memory)

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

    from .search.commands import add_commands

    add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("papermill").setLevel(logging.WARNING)  # its input/output paths: tclib logs its own
    try:
        return args.handler(args)
    except StageError as err:
        print(f"tclib: error: {err}", file=sys.stderr)
        return 1
    except TclibError as err:
        print(f"tclib: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
