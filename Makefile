# Two entry points that work on a fresh machine with Python 3.11+ (no root, no GPU):
#   make demo   set up .venv, render projects/demo with the animatic engine, print the video's path
#   make test   set up .venv with the dev extras, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: demo test test-quick setup setup-dev clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "reelflow needs Python 3.11+ (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: $(BIN)/python pyproject.toml
	$(PIP) -e . --config-settings editable_mode=compat
	@touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) -e '.[dev]' --config-settings editable_mode=compat
	@touch $@

setup: $(VENV)/.base
setup-dev: $(VENV)/.dev

demo: $(VENV)/.base
	$(BIN)/reelflow render projects/demo

test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: $(VENV)/.dev
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

clean:
	rm -rf .reelflow .pytest_cache
