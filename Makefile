# Hephaestus Forge — the two commands (`make demo`, `make test`) plus `make ui`.
# Everything installs into .venv with pip; state lives under .hephaestus/ (git-ignored).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# A CPU build by default; on a GPU machine: make TORCH_SPEC='torch==<your CUDA build>' ...
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= default

export PATH := $(BIN):$(PATH)
export HEPHAESTUS_HOME ?= $(CURDIR)/.hephaestus
export DAGSTER_HOME ?= $(HEPHAESTUS_HOME)/dagster_home
export HEPHAESTUS_PROFILE ?= $(PROFILE)
# Telemetry off: these machines reach only the package registries.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TQDM_DISABLE := 1

# The tests fork workers after tokenizing: tokenizers' own threads off there (its fork warning, and no
# oversubscribed 2-core runs). The demo, the UI and a GPU machine's builds keep them: with them off, training
# a tokenizer and packing shards run on one core.
test test-fast test-browser fuzz: export TOKENIZERS_PARALLELISM := false

.PHONY: install pydocs bfclwheel browser demo test test-browser test-fast fuzz ui lint clean services-install services services-stop cluster-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	cd dbt_project && $(BIN)/dbt parse --quiet --profiles-dir .
	touch $@

## dbt's manifest (what Definitions load the dbt assets from), re-parsed whenever the project changes.
DBT_MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := dbt_project/dbt_project.yml $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null)
$(DBT_MANIFEST): $(VENV)/.installed $(DBT_SOURCES)
	cd dbt_project && $(BIN)/dbt parse --quiet --profiles-dir .
	touch $@

install: $(VENV)/.installed $(DBT_MANIFEST)

## Debian's python3.11-doc HTML for the real-docs crawl test and the `python-docs` crawl: the system
## copy if installed, else extracted (no root needed) under $(HEPHAESTUS_HOME)/cache/python3.11-doc.
## Never fails: without apt it says so and that test skips (fails under HEPHAESTUS_REQUIRE_PYDOCS=1).
pydocs:
	@bash .ci/fetch_python_docs.sh

## The bfcl-eval wheel in $(HEPHAESTUS_HOME)/cache (`pip download --no-deps`, never installed): the
## multi-turn tests load its environment classes. Never fails: offline, those tests skip (fail under
## HEPHAESTUS_REQUIRE_BFCL_WHEEL=1).
bfclwheel: install
	@$(BIN)/hephaestus bfcl download --json >/dev/null 2>&1 || echo "bfclwheel: could not download bfcl-eval — the multi-turn tests will be skipped" >&2

## The cluster profiles' servers from Debian's packages (postgresql, redis-server), installed with
## apt-get when root; never fails: without them the cluster tests skip (fail under HEPHAESTUS_REQUIRE_SERVICES=1).
services-install:
	@bash .ci/install_services.sh

## PostgreSQL, Redis, an MLflow server (on PostgreSQL) and 2 Celery workers on 127.0.0.1, passwords
## generated now; state and services.env (source it) under $(HEPHAESTUS_HOME)/services. Left running.
services: install services-install
	$(BIN)/python -m orchestration.services start --profile cluster_micro

services-stop:
	$(BIN)/python -m orchestration.services stop

## The micro graph end to end on the services above: Dagster on PostgreSQL, steps over 2 Celery workers,
## MLflow server on PostgreSQL, training as 2 torchrun nodes; prints the worker of every step.
cluster-demo: install services-install
	$(BIN)/python -m orchestration.cluster_demo

## Debian's chromium for the browser tests (Playwright drives the system binary, never its own
## download): installed with apt-get where missing and root. Never fails: otherwise it says so and the
## browser tests skip (they fail under HEPHAESTUS_REQUIRE_BROWSER=1, as CI sets).
browser:
	@bash .ci/install_chromium.sh

## Materialize every asset on the `default` profile and print the scorecard.
demo: install pydocs
	$(BIN)/python -m orchestration.demo --profile $(PROFILE)

## Create the environment and run the whole test suite: unit, definitions, integration and distributed
## tests on $(TEST_WORKERS) processes (pytest-xdist; a test file stays in one process, so its module
## fixtures are built once), then the browser tests in tests/ui alone, on Debian's chromium, which
## `make browser` installs where missing (they drive live servers, so they run apart from the load).
TEST_WORKERS ?= 2
test: install pydocs bfclwheel services-install browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile -m "not browser"
	$(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests/ui

## Only the browser tests (Playwright on Debian's chromium, tests/ui; part of `make test` too): the
## two UIs on a fresh micro home, about a minute and a half on 2 cores; a missing chromium fails here.
test-browser: install browser
	HEPHAESTUS_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests/ui

## The fuzz targets with random seeds and 100x the examples, 30 random kill -9s over the ingest and
## warehouse layers, and 10 over the whole micro graph as `make demo` runs it (about an hour on 2 cores;
## `make test` runs them derandomized with a short budget: the graph test kills 3 times in its API subset).
fuzz: install
	HEPHAESTUS_FUZZ=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz
	HEPHAESTUS_KILLS=30 HEPHAESTUS_KILL_GROUPS=ingest,warehouse $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_kill.py
	HEPHAESTUS_FUZZ=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_kill_graph.py

## Unit tests only (no integration run).
test-fast: install
	$(BIN)/python -m pytest -q -m "not integration and not distributed and not browser"

## Dagster UI (port 3000) and MLflow UI (port 5000) on 127.0.0.1, on the stores `make demo` wrote.
ui: install
	$(BIN)/python -m orchestration.ui --profile $(PROFILE)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(HEPHAESTUS_HOME) dbt_project/target dbt_project/logs
