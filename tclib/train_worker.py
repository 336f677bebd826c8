"""One process of a student's training over several GPUs; `torchrun` starts one per GPU:

    python -m torch.distributed.run --standalone --nproc_per_node=<gpus> -m tclib.train_worker launch.json

`launch.json` (written by tclib.experiment.students.launch_student_training) holds the params, the run, the seed and
the stage folder. Every process finds the data prepared and the teachers' feature caches built (the
stages before training run in the notebook first); rank 0 writes the checkpoints.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from .distributed import init_from_environment, is_main
from .experiment.data import prepare_data
from .experiment.students import train_student
from .experiment.teachers import prepared_teachers
from .params import Params
from .runlog import LOG_FORMAT


def main(argv: list[str] | None = None) -> None:
    job = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    P = Params.from_mapping(job["params"], source=str((argv or sys.argv[1:])[0]))
    init_from_environment(P.device)
    logging.basicConfig(level=logging.INFO if is_main() else logging.WARNING, format=LOG_FORMAT, stream=sys.stdout)
    data = prepare_data(P)
    train_student(P, data, prepared_teachers(P, data), job["run"], int(job["seed"]), Path(job["directory"]))


if __name__ == "__main__":
    main()
