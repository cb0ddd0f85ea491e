# sitewatch: two set-up commands on a fresh machine
#   make demo   create .venv, install, run the main job on the embedded default
#   make test   install (Python + system packages), lint, type-check, run the whole suite
# Long jobs have their own targets: make bench, make eval.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS ?= dev,web,postgres,ml,video
DEMO_OUT ?= demo-output

.PHONY: all install demo test lint typecheck unit system-deps bench eval fuzz constraints ui audit clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

# Re-installs only when pyproject.toml or the pinned constraints change.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/sitewatch demo --out $(DEMO_OUT)

system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

unit: install system-deps
	SITEWATCH_TEST_PG_URL="$$(bash scripts/pg-test-server.sh)" $(BIN)/pytest $(PYTEST_ARGS)

# Known vulnerabilities in the pinned dependencies (fails on any; an unreachable service is reported).
audit: install
	$(BIN)/python scripts/audit.py

test: lint typecheck audit unit

bench: install system-deps
	SITEWATCH_TEST_PG_URL="$$(bash scripts/pg-test-server.sh)" bash bench/run_all.sh

eval: install
	bash scripts/eval.sh

# A longer, randomised fuzzing campaign of the importers and the STAC parser (FUZZ_SCALE x the
# example counts of `make test`), with hypothesis statistics.
FUZZ_SCALE ?= 20
fuzz: install
	SITEWATCH_FUZZ_SCALE=$(FUZZ_SCALE) SITEWATCH_FUZZ_RANDOM=1 $(BIN)/pytest tests/reliability/test_fuzz_importers.py -p no:cacheprovider -q --hypothesis-show-statistics

# Rebuild the web UI (needs Node/npm; the built files in src/sitewatch/web/static are committed).
ui:
	cd webui && npm ci && npm run build

# Refresh the pins after changing dependencies (then commit constraints.txt).
constraints: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip freeze --exclude-editable | sed -e 's/^torch @ .*/torch==2.13.0/' > constraints.txt

clean:
	rm -rf $(VENV) $(DEMO_OUT) .mypy_cache .ruff_cache .pytest_cache
