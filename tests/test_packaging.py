"""The repository's own files: notebooks without outputs and with a complete parameters cell,
environment.yml and pyproject.toml listing the same dependencies."""

import json
import re
from pathlib import Path

import pytest
import tomllib
import yaml

from tclib.cli import experiment_notebooks
from tclib.notebook import KNOBS
from tclib.params import Params

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_seven_experiment_notebooks_in_pipeline_order_and_the_paper_tables():
    assert [p.stem for p in NOTEBOOKS] == ["01_data_prep", "02_teacher_scoring", "03_train_student", "04_evaluate",
                                          "05_attention_plots", "06_explore", "07_paper_tables", "08_search"]
    experiment = [p.name for p in NOTEBOOKS if p.stem != "07_paper_tables"]  # 07 reads every experiment
    assert [p.name for p in experiment_notebooks(ROOT / "notebooks")] == experiment


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_parameters_cell_is_short_and_no_outputs_are_committed(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one papermill parameters cell"
    names = re.findall(r"^(\w+) = ", "".join(tagged[0]["source"]), flags=re.M)
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), "commit notebooks without outputs"
    if path.stem == "07_paper_tables":  # every experiment: folders, not one params file
        assert names == ["params_dir", "results_dir", "published", "out"], "regenerate with `make notebooks`"
        return
    assert names[:3] == ["params", "seeds", "device"] and len(names) <= 8, "regenerate with `make notebooks`"
    # a knob that is a params key overrides it (tclib.notebook.KNOBS); any other name must not be one,
    # or notebook_params would take it for a key papermill injected
    assert not set(names[3:]) & (set(Params.field_names()) - set(KNOBS))


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted
    assert "-e ." in pip_section
