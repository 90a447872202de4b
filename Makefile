# Two commands do everything on a fresh machine:
#   make run   - create .venv if missing, install, and run the whole pipeline on the embedded sample
#   make test  - create .venv if missing, install, and run the test suite (with headless chromium for the
#                plot render test when it can be installed); CI runs this one
# and one for developers:
#   make quick - the tests not marked slow (no DVC runs, no training, no servers): the quick loop
#   make constraints - rewrite constraints.txt from the versions in .venv, after the tests pass on new ones
#
# The everyday commands, run with .venv/bin first on PATH (no need to activate .venv; each prints the command it
# runs on standard error, so `make report > report.md` keeps only the Markdown):
#   make metrics          - dvc metrics show: the numbers a reviewer compares
#   make plots            - dvc plots show: writes dvc_plots/index.html and prints where it is
#   make diff REV=main    - dvc metrics diff and dvc params diff: this workspace against a git revision
#   make report REV=main  - the pull-request report in Markdown, as .github/workflows/pr-report.yml posts it
#
# TORCH_SPEC picks the torch build installed before anything else; override it for your CUDA build,
# e.g. `make run TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"`. Everything else is
# installed at the versions of constraints.txt; `make constraints` rewrites it from .venv (docs/development.md).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# The exact versions of everything but torch that the tests passed with (scripts/freeze_constraints.py writes it:
# `make constraints`). `CONSTRAINTS=` installs from pyproject.toml's ranges alone.
CONSTRAINTS ?= constraints.txt
# Test processes (pytest-xdist). Most of the suite's time is single-threaded (Python start-up, DVC, imports),
# so two workers use two cores; each test module stays on one worker, sharing its fixtures.
TEST_WORKERS ?= 2
# The git revision that `make diff` and `make report` compare with.
REV ?= main
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet$(if $(CONSTRAINTS), -c $(CONSTRAINTS))
# Install stamps, one per step: torch (its name carries a checksum of TORCH_SPEC, so another spec is another
# stamp and reinstalls torch and everything after it), the pipeline's packages (`make run`), the test tools.
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s' '$(TORCH_SPEC)' | cksum | cut -d ' ' -f 1)
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# The project's tools first on PATH (dvc, and python for the stages dvc runs); abspath allows VENV=/abs/path.
WITH_VENV := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: setup browser run test quick clean constraints metrics plots diff report

# torch goes in first, so that nothing installed later pulls in a different build. A venv that holds another
# spec's torch uninstalls it first: pip would otherwise keep any installed torch as satisfying the new spec.
$(TORCH_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	if ls $(VENV)/.torch-* >/dev/null 2>&1; then $(BIN)/python -m pip uninstall --quiet --yes torch; rm -f $(VENV)/.torch-*; fi
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	printf '%s\n' '$(TORCH_SPEC)' > $@

# What the pipeline needs: the project and its dependencies, at the constrained versions.
$(RUN_STAMP): pyproject.toml $(CONSTRAINTS) $(TORCH_STAMP)
	$(PIP) -e .
	touch $@

# The test tools on top (the S3 test server, ONNX, FAISS, hypothesis, ruff, pytest).
$(TEST_STAMP): $(RUN_STAMP)
	$(PIP) -e ".[test]"
	touch $@

setup: $(RUN_STAMP)

run: $(RUN_STAMP)
	$(WITH_VENV) $(BIN)/dvc repro

# Headless chromium and the vega libraries for the plot render test; never fails (the test then skips).
browser:
	.ci/install_browser.sh

test: $(TEST_STAMP) browser
	$(WITH_VENV) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

quick: $(TEST_STAMP)
	$(WITH_VENV) $(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadscope

# Rewrite constraints.txt from the versions installed in .venv: run it after the tests pass on new versions.
constraints: $(TEST_STAMP)
	$(BIN)/python scripts/freeze_constraints.py --out $(or $(CONSTRAINTS),constraints.txt)

metrics: $(RUN_STAMP)
	@echo '$$ dvc metrics show' >&2
	@$(WITH_VENV) dvc metrics show

plots: $(RUN_STAMP)
	@echo '$$ dvc plots show' >&2
	@$(WITH_VENV) dvc plots show

diff: $(RUN_STAMP)
	@echo '$$ dvc metrics diff $(REV)' >&2
	@$(WITH_VENV) dvc metrics diff $(REV)
	@echo '$$ dvc params diff $(REV)' >&2
	@$(WITH_VENV) dvc params diff $(REV)

report: $(RUN_STAMP)
	@echo '$$ python -m embedft.reporting.pr_report --against $(REV)' >&2
	@$(WITH_VENV) python -m embedft.reporting.pr_report --against $(REV)

clean:
	rm -rf $(VENV) .checkpoints
