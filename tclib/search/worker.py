"""One process of `tclib index --gpus N`; torchrun starts one per GPU, each on the GPU of its local
rank (or several on CPUs, gloo):

    python -m torch.distributed.run --nproc_per_node=<N> -m tclib.search.worker <out>/launch.json

(or torchrun with its own multi-node flags). Each process encodes every N-th chunk of the units; the
first writes the tables, the FAISS index and the manifest once every chunk is done.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..distributed import init_from_environment, is_main, local_device
from ..runlog import LOG_FORMAT
from .build import build_index
from .commands import index_job, model_of


def main(argv: list[str] | None = None) -> None:
    job = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    init_from_environment(job["device"])
    logging.basicConfig(level=logging.INFO if is_main() else logging.WARNING, format=LOG_FORMAT, stream=sys.stdout)
    args = argparse.Namespace(**{**job, "out": Path(job["out"])})
    args.device = str(local_device(args.device))  # the GPU of this process's local rank
    spec, P = model_of(args)
    report = build_index(index_job(args, spec, P), lock=False)  # the launcher holds the lock
    if is_main():
        print(report.summary())


if __name__ == "__main__":
    main()
