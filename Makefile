# The two commands of the README. Each creates (or reuses) the virtual environment .venv first.
PYTHON ?= python3
VENV ?= .venv
PARAMS ?= params/demo.yaml
BIN := $(VENV)/bin
STAMP := $(VENV)/.tclib-installed

.PHONY: reproduce test lint tables browser-check notebooks clean-demo

reproduce: $(STAMP)
	$(BIN)/tclib reproduce $(PARAMS)

test: lint
	$(BIN)/python -m pytest -q

# ruff (pyflakes, syntax errors, bugbear, import order, pyupgrade) and mypy on tclib/, both configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check tclib tests benchmarks tools
	$(BIN)/mypy

# Every experiment's metrics beside the published numbers: results/tables/tables.md (notebook 07).
tables: $(STAMP)
	$(BIN)/tclib tables

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

# Opens the executed notebooks of `make reproduce` (and of `make tables`, when run) in JupyterLab in headless Chromium: fails on an
# error output or a figure cell without an image, then re-runs each (Run All) and fails on an error
# or a file changed outside results/demo/scratch/; screenshots go to results/demo/screenshots/.
# Installs Debian's chromium and chromium-driver (apt-get, as root or through sudo) and selenium.
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)
browser-check: $(STAMP)
	command -v chromium > /dev/null && command -v chromedriver > /dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }
	$(BIN)/python -m pip install --quiet -e ".[browser]"
	$(BIN)/python tools/browser_check.py results/$(basename $(notdir $(PARAMS))) $(wildcard results/tables)

# Regenerate notebooks/*.ipynb after changing the params schema (tclib/params.py).
notebooks: $(STAMP)
	$(BIN)/python tools/make_notebooks.py

clean-demo:
	rm -rf results/demo
