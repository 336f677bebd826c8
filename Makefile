# The two commands of the README. Each creates (or reuses) the virtual environment .venv first.
PYTHON ?= python3
VENV ?= .venv
PARAMS ?= params/demo.yaml
BIN := $(VENV)/bin
STAMP := $(VENV)/.tclib-installed

.PHONY: reproduce test notebooks clean-demo

reproduce: $(STAMP)
	$(BIN)/tclib reproduce $(PARAMS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

# Regenerate notebooks/*.ipynb after changing the params schema (tclib/params.py).
notebooks: $(STAMP)
	$(BIN)/python tools/make_notebooks.py

clean-demo:
	rm -rf results/demo
