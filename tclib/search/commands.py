"""The command line of search: `tclib index`, `tclib search`, `tclib export bigfile|student` (wired by
tclib.cli)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ..errors import TclibError
from ..files import write_text
from ..lock import experiment_lock


def add_commands(commands) -> None:
    index = commands.add_parser("index", help="encode a collection of videos (or moments) into a searchable index")
    index.add_argument("out", type=Path, help="the index folder (written; a rerun encodes only what changed)")
    source = index.add_mutually_exclusive_group(required=True)
    source.add_argument("--videos", metavar="DIR", help="every video file under DIR, recursively")
    source.add_argument("--list", metavar="FILE", help="the video files listed in FILE, one a line")
    source.add_argument("--split", metavar="SPLIT", help="the params file's test (or train) split")
    source.add_argument("--bigfile", metavar="DIR", help="video vectors made elsewhere, in TeachCLIP's BigFile layout")
    index.add_argument("--params", help="the experiment whose trained student encodes (and whose split --split "
                                        "takes)")
    index.add_argument("--run", default=None, help="the student run (default: the params' last run)")
    index.add_argument("--seed", type=int, default=None, help="its seed (default: the params' first)")
    index.add_argument("--student", metavar="DIR", help="an exported student (tclib export student), or a hub id "
                                                        "hf-hub:owner/name: no params file needed")
    moments = index.add_mutually_exclusive_group()
    moments.add_argument("--segment-seconds", type=float, metavar="N",
                         help="cut each video into moments of N s (real seconds, to each video's end)")
    moments.add_argument("--shots", metavar="FILE", help="moments as rows 'video start end' (seconds)")
    index.add_argument("--shots-in", choices=("seconds", "frames"), default="seconds",
                       help="the shot file's times: seconds, or frame numbers (end frame included, as TRECVID's "
                            "master shot boundaries) converted with each video's frame rate")
    index.add_argument("--segment-stride", type=float, metavar="M", help="a moment every M s (default: N)")
    index.add_argument("--batch-size", type=int, default=64)
    index.add_argument("--shard-size", type=int, default=1024, help="units per shard (the unit of resuming)")
    index.add_argument("--workers", type=int, default=4, help="decoding processes")
    index.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:K (with --gpus N on GPUs: cuda "
                                                       "or auto, each process on the GPU of its local rank)")
    index.add_argument("--index", dest="kind", default="auto", choices=("auto", "exact", "ivfpq", "hnsw"),
                       help="exact search, IVF-PQ or HNSW-SQ8 with exact re-ranking, or by the collection's size "
                            "and --ram-per-video")
    index.add_argument("--ram-per-video", default="1KB", metavar="BYTES",
                       help="RAM the approximate index may hold per video (e.g. 1KB, 100B): HNSW-SQ8 needs about "
                            "dim + 272 bytes, IVF-PQ dim/8 + 8 (default 1KB)")
    index.add_argument("--gpus", type=int, default=1, help="encode over this many processes (torchrun)")
    index.add_argument("--tune-queries", metavar="FILE", help="captions (one a line) like the queries to come: "
                                                             "the approximate index is tuned on them")
    index.set_defaults(handler=run_index)

    search = commands.add_parser("search", help="search an index with text")
    search.add_argument("out", type=Path, help="the index folder")
    search.add_argument("query", nargs="+", help="one or more queries")
    search.add_argument("-k", type=int, default=10, help="results per query")
    search.add_argument("--json", action="store_true", help="one JSON object per result")
    search.set_defaults(handler=run_search)

    export = commands.add_parser("export", help="features for other tools")
    formats = export.add_subparsers(dest="format", required=True)
    bigfile = formats.add_parser("bigfile", help="TeachCLIP's BigFile layout (and its evaluation's gt file)")
    bigfile.add_argument("out", type=Path)
    what = bigfile.add_mutually_exclusive_group(required=True)
    what.add_argument("--index", type=Path, help="an index folder's unit vectors")
    what.add_argument("--params", help="a trained student's features of the params' split (with --split)")
    bigfile.add_argument("--run", default=None)
    bigfile.add_argument("--seed", type=int, default=None)
    bigfile.add_argument("--split", default="test", choices=("test",))
    bigfile.set_defaults(handler=run_export)
    student = formats.add_parser("student", help="a trained student as model.safetensors, config.json and a "
                                                 "model card (the Hugging Face layout)")
    student.add_argument("out", type=Path)
    student.add_argument("--params", required=True)
    student.add_argument("--run", default=None, help="the student run (default: the params' last run)")
    student.add_argument("--seed", type=int, default=None, help="its seed (default: the params' first)")
    student.set_defaults(handler=run_export)


def collection(args: argparse.Namespace, P):
    from .units import Moments, collection_of

    split = None
    if args.split is not None:
        split = (P, {"test": P.test_split, "train": P.train_split}.get(args.split, args.split))
    moments = Moments(seconds=args.segment_seconds, stride=args.segment_stride, shots=args.shots,
                      shots_in=shots_in(args))
    return collection_of(videos=args.videos, video_list=args.list, split=split, moments=moments, workers=args.workers)


def model_of(args: argparse.Namespace):
    """(the student that encodes, the params file or None): an exported student (--student), or a trained
    student of the params' experiment; --split needs the params whichever model encodes."""
    from .exported import exported_spec
    from .model import student_spec

    student = getattr(args, "student", None)
    if student is None and args.params is None:
        raise TclibError("name the model: --params P [--run R] [--seed S], or --student DIR (an exported student)")
    if student is not None and (args.run is not None or args.seed is not None):
        raise TclibError("--run and --seed pick a student of --params; --student names one already")
    if args.split is not None and args.params is None:
        raise TclibError("--split takes a split of a params file: give --params")
    from ..params import load_params

    P = load_params(args.params) if args.params is not None else None
    if student is not None:
        return exported_spec(student), P
    assert P is not None  # checked above: without --student there is --params
    return student_spec(P, args.run, args.seed), P


def run_index(args: argparse.Namespace) -> int:
    from ..preflight import device_problems
    from .build import build_index, import_bigfile

    if args.segment_stride is not None and args.segment_seconds is None:
        raise TclibError("--segment-stride goes with --segment-seconds")
    found = [] if args.bigfile is not None else device_problems(args.device, args.gpus, options=True)
    if found:  # before anything is loaded
        raise TclibError("\n".join(found))
    spec, P = model_of(args)
    if args.bigfile is not None:
        print(import_bigfile(args.out, args.bigfile, spec, args.kind, ram_per_video=ram_per_video(args)).summary())
        return 0
    if args.gpus > 1:
        return launch(args)
    report = build_index(index_job(args, spec, P))
    print(report.summary())
    return 0


def tune_captions(args: argparse.Namespace) -> list[str] | None:
    if getattr(args, "tune_queries", None) is None:
        return None
    try:
        lines = Path(args.tune_queries).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TclibError(f"cannot read the captions to tune on, {args.tune_queries}: {exc}") from exc
    captions = [line.strip() for line in lines if line.strip()]
    if not captions:
        raise TclibError(f"{args.tune_queries} holds no caption")
    return captions


def index_job(args: argparse.Namespace, spec, P):
    """The IndexJob of `tclib index`'s arguments (also what each process of --gpus N builds)."""
    from .build import IndexJob

    return IndexJob(args.out, collection(args, P), spec, batch_size=args.batch_size, workers=args.workers,
                    shard_size=args.shard_size, device=args.device, kind=args.kind, ram_per_video=ram_per_video(args),
                    source=source_of(args), tune_captions=tuple(tune_captions(args) or ()))


def ram_per_video(args: argparse.Namespace) -> int:
    """--ram-per-video in bytes (1KB = 1024; a job written before it existed: the default)."""
    from ..memory.planning import parse_bytes
    from .vectors import RAM_PER_VIDEO

    value = getattr(args, "ram_per_video", None)
    return RAM_PER_VIDEO if value is None else parse_bytes(str(value))


def source_of(args: argparse.Namespace) -> dict:
    keys = ("videos", "list", "split", "segment_seconds", "segment_stride", "shots", "params", "run", "seed", "student")
    source = {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}
    return {**source, "shots_in": shots_in(args)} if shots_in(args) != "seconds" else source


def shots_in(args: argparse.Namespace) -> str:
    """The shot file's time unit (seconds in a job written before --shots-in existed)."""
    return getattr(args, "shots_in", "seconds")


def launch(args: argparse.Namespace) -> int:
    """`tclib index --gpus N`: torchrun starts N processes of tclib.search.worker (this one holds the lock)."""
    job = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
           if key != "handler"}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "launch.json"
    write_text(path, json.dumps(job))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.gpus}",
               "-m", "tclib.search.worker", str(path)]
    with experiment_lock(args.out):
        return subprocess.run(command).returncode


def run_search(args: argparse.Namespace) -> int:
    from .query import Index
    from .units import seconds_text

    index = Index(args.out)
    results = index.search(args.query, args.k)
    if index.note:
        print(f"note: {index.note}", file=sys.stderr)
    if args.json:
        for row in results.to_dict(orient="records"):
            print(json.dumps({k: (None if pd.isna(v) else v) for k, v in row.items()}, default=str))
        return 0
    for query, group in results.groupby("query", sort=False):
        cut = " (cut to the model's words)" if group.truncated.iloc[0] else ""
        print(f"{query}{cut}")
        for row in group.itertuples(index=False):
            moment = "" if pd.isna(row.start) else f"  {seconds_text(row.start)}-{seconds_text(row.end)} s"
            print(f"  {row.rank:>3}  {row.score:.4f}  {row.key}{moment}  {row.path}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..params import load_params
    from .bigfile import export_index, export_split
    from .exported import export_student

    if args.format == "student":
        out = export_student(load_params(args.params), args.out, args.run, args.seed)
        print(f"student in {out}: model.safetensors, config.json, README.md; index with it: "
              f"tclib index OUT --videos DIR --student {out}")
    elif args.index is not None:
        print(f"unit vectors of {args.index} in {export_index(args.index, args.out)}")
    else:
        out = export_split(load_params(args.params), args.run, args.seed, args.out)
        print(f"test split features in {out}/videos, {out}/queries; ground truth {out}/gt.txt")
    return 0
