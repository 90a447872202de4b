# Two commands do everything on a fresh machine:
#   make run   - create .venv if missing, install, and run the whole pipeline on the embedded sample
#   make test  - create .venv if missing, install, and run the test suite (with headless chromium for the
#                plot render test when it can be installed); CI runs this one
# and one for developers:
#   make quick - the tests not marked slow (no DVC runs, no training, no servers): the quick loop
#
# TORCH_SPEC picks the torch build installed before anything else; override it for your CUDA build,
# e.g. `make run TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"`.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# Test processes (pytest-xdist). Most of the suite's time is single-threaded (Python start-up, DVC, imports),
# so two workers use two cores; each test module stays on one worker, sharing its fixtures.
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser run test quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Headless chromium and the vega libraries for the plot render test; never fails (the test then skips).
browser:
	.ci/install_browser.sh

test: $(STAMP) browser
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

quick: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadscope

clean:
	rm -rf $(VENV) .checkpoints
