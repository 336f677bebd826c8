"""The repository's own files: notebooks without outputs and with a complete parameters cell,
environment.yml and pyproject.toml listing the same dependencies."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tclib.params import Params

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_five_pipeline_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["01_data_prep", "02_teacher_scoring", "03_train_student", "04_evaluate",
                                          "05_attention_plots"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_parameters_cell_lists_every_param_and_no_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one papermill parameters cell"
    names = re.findall(r"^(\w+) = ", "".join(tagged[0]["source"]), flags=re.M)
    assert names == Params.field_names(), "regenerate with `make notebooks`"
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), "commit notebooks without outputs"


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
