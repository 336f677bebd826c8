"""`tclib reproduce` as a user meets it: what the terminal shows, the log file, the executed notebooks, the lock.

The notebooks here are tiny ones written by the tests (a parameters cell, then a cell that logs or
raises), so a run takes a couple of seconds of kernel start-up and nothing of the real pipeline.
"""

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from tclib.cli import main
from tclib.errors import LockedError
from tclib.lock import experiment_lock
from tclib.models.checkpoint import read_checkpoint, save_checkpoint
from tclib.project import project_root

PARAMETERS = 'params = "params/demo.yaml"'  # what tclib reproduce sets: the run's params file
LOGS = ("import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s', force=True)\n"
        "log = logging.getLogger('tclib.check')\n")
MESSAGE = "/x/y.bin: does not fit XCLIP: missing keys ['a', 'b']"


def write_notebook(path: Path, *cells: str) -> None:
    notebook = new_notebook(cells=[new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                                   *map(new_code_cell, cells)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


@pytest.fixture
def project(tmp_path):
    """A params file for experiment `exp` under tmp_path/results, and a folder for notebooks."""
    (tmp_path / "notebooks").mkdir()
    params = tmp_path / "exp.yaml"
    params.write_text(f"exp: exp\nresults_dir: {tmp_path / 'results'}\nsynthetic: true\ndata_root: {tmp_path / 'data'}\n"
                      "clip_model: tclib-tiny\nclip_pretrained: ''\n")
    return tmp_path


def reproduce(project: Path, *options: str) -> int:
    return main(["reproduce", str(project / "exp.yaml"), "--notebooks", str(project / "notebooks"), *options])


def test_failing_notebook_ends_with_its_error(project, capsys):
    notebooks, exp_dir = project / "notebooks", project / "results" / "exp"
    write_notebook(notebooks / "01_prepare.ipynb",
                   LOGS + "from tclib.params import load_params\nlog.info('resuming %s', load_params(params).exp)",
                   # a line redrawn 2000 times, as a progress bar is
                   "import sys\nfor i in range(2000):\n    sys.stderr.write(f'\\rstep {i + 1}/2000')\nsys.stderr.write('\\n')")
    write_notebook(notebooks / "02_teacher_scoring.ipynb",
                   f"from tclib.errors import CheckpointError\nraise CheckpointError({MESSAGE!r})")
    write_notebook(notebooks / "03_train_student.ipynb", "print('never runs')")
    # an executed notebook of an earlier run, which the failed one replaces
    (exp_dir / "notebooks").mkdir(parents=True)
    (exp_dir / "notebooks" / "02_teacher_scoring.ipynb").write_text("{}")

    assert reproduce(project) == 1

    err = capsys.readouterr().err
    [log_file] = (exp_dir / "logs").glob("reproduce-*.log")
    executed = exp_dir / "notebooks" / "02_teacher_scoring.ipynb"
    assert err.splitlines()[-3:] == [
        f"tclib: error: 02_teacher_scoring failed: CheckpointError: {MESSAGE}",
        f"  executed notebook: {executed}",
        f"  full traceback: {log_file}",
    ]
    # the first notebook's log lines were shown as they came; of the redrawn line, its final state
    # and at most one state seen before it (a progress line is printed at most every 30 s)
    assert "INFO tclib.check: resuming exp" in err
    steps = [line for line in err.splitlines() if "step " in line]
    assert steps[-1] == "step 2000/2000" and len(steps) <= 2
    assert "never runs" not in err

    log_text = log_file.read_text()
    assert "INFO tclib.check: resuming exp" in log_text and "step 2000/2000" in log_text
    assert "Traceback" in log_text and f'raise CheckpointError("{MESSAGE}")' in log_text
    assert log_text.rstrip().endswith(f"full traceback: {log_file}")

    # the failed notebook replaced the earlier copy, whole, with the error in it
    cells = json.loads(executed.read_text())["cells"]
    errors = [out for cell in cells for out in cell.get("outputs", []) if out["output_type"] == "error"]
    assert [(e["ename"], e["evalue"]) for e in errors] == [("CheckpointError", MESSAGE)]
    assert sorted(p.name for p in (exp_dir / "notebooks").iterdir()) == ["01_prepare.ipynb",
                                                                        "02_teacher_scoring.ipynb"]


def test_bad_params_stop_before_anything_runs(project, capsys):
    write_notebook(project / "notebooks" / "01_prepare.ipynb", "print('runs')")
    (project / "exp.yaml").write_text(f"exp: exp\nresults_dir: {project / 'results'}\nepoch: 3\n")
    assert reproduce(project) == 2
    assert "unknown params key(s) 'epoch'" in capsys.readouterr().err
    assert not (project / "results").exists()


def test_preflight_lists_every_problem_before_anything_runs(project, capsys):
    write_notebook(project / "notebooks" / "01_prepare.ipynb", "print('runs')")
    (project / "exp.yaml").write_text(f"exp: exp\nresults_dir: {project / 'results'}\ndata_root: {project / 'none'}\n"
                                      "clip_model: ViT-B-32\nteacher_checkpoints: {xclip: nowhere.bin}\n")
    assert reproduce(project) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("tclib: error: ")
    assert [lines[0].removeprefix("tclib: error: "), *lines[1:]] == [
        f"{project / 'exp.yaml'}: clip_pretrained 'openai' holds weights trained with QuickGELU (OpenAI's), but "
        "clip_model 'ViT-B-32' is built with GELU; use clip_model: ViT-B-32-quickgelu",
        f"{project / 'exp.yaml'}: params key 'data_root': folder not found: {project / 'none'}",
        f"{project / 'exp.yaml'}: params key 'teacher_checkpoints': xclip: file not found: "
        f"{project_root() / 'nowhere.bin'}"]
    assert not (project / "results").exists()


HOLDER = """
import sys
from tclib.lock import experiment_lock
with experiment_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes stdin
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock of tmp_path/results/exp; yields (process, its script)."""
    script = tmp_path / "hold_lock.py"
    script.write_text(HOLDER)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "results" / "exp")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "locked\n"
        yield process, script
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def test_second_run_stops_naming_the_first(project, holder, capsys):
    process, script = holder
    write_notebook(project / "notebooks" / "01_prepare.ipynb", "print('runs')")
    assert reproduce(project) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"tclib: error: {project / 'results' / 'exp'} is in use by another run (pid {process.pid} ")
    assert f"{script} " in last and last.endswith("or pass --wait (wait=True) to start when it is done")
    assert not (project / "results" / "exp" / "logs").exists()


def test_lock_waits_for_the_holder_when_asked(tmp_path, holder, caplog):
    process, _ = holder
    exp_dir = tmp_path / "results" / "exp"
    with pytest.raises(LockedError, match=f"pid {process.pid} "):
        with experiment_lock(exp_dir):
            pass

    waiting = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record):
            if "waiting for pid" in record.getMessage():
                waiting.set()

    def release_when_waiting():
        waiting.wait(timeout=60)
        process.stdin.close()

    watch = Watch()
    logging.getLogger("tclib.lock").addHandler(watch)
    releaser = threading.Thread(target=release_when_waiting)
    releaser.start()
    try:
        with caplog.at_level(logging.INFO, logger="tclib.lock"), experiment_lock(exp_dir, wait=True) as lock:
            note = json.loads(lock.read_text())
    finally:
        logging.getLogger("tclib.lock").removeHandler(watch)
        releaser.join()
    assert waiting.is_set()
    assert process.wait(timeout=30) == 0
    assert note["pid"] != process.pid and note["command"]
    # released: a third taker gets it at once
    with experiment_lock(exp_dir):
        pass


def test_concurrent_checkpoints_to_one_path(tmp_path):
    path = tmp_path / "model.pt"
    states = [{"weight": torch.full((256, 256), float(k))} for k in range(2)]
    start = threading.Barrier(2)
    errors = []

    def save_many(state):
        start.wait()
        try:
            for _ in range(20):
                save_checkpoint(state, path)
        except Exception as err:  # collected: the test fails below, naming it
            errors.append(err)

    threads = [threading.Thread(target=save_many, args=(state,)) for state in states]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    weight = read_checkpoint(path)["weight"]
    assert weight.shape == (256, 256) and weight.unique().tolist() in ([0.0], [1.0])
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_clean_takes_the_projects_params_files_from_any_folder_of_it(tmp_path, monkeypatch, capsys):
    from conftest import new_project

    import tclib.clean

    project = new_project(tmp_path / "project")
    monkeypatch.delenv("TCLIB_ROOT", raising=False)
    monkeypatch.chdir(project / "notebooks")
    seen = []
    monkeypatch.setattr(tclib.clean, "clean", lambda files, dry_run: seen.append(files) or tclib.clean.CleanReport())
    assert main(["clean", "--dry-run"]) == 0
    assert seen == [[str(project.resolve() / "params" / "demo.yaml")]]
