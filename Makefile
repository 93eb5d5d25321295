# authbench — `make bench` and `make test` work on a fresh clone: the first use builds .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
AB := $(VENV)/bin/authbench
READY := $(VENV)/.ready
SCHEME ?= jwt
ALG ?=
PORT ?= 8000
HOST ?= http://127.0.0.1:$(PORT)
MATRIX ?= quick
RUN ?= latest
PLANT ?= jwt-HS256=60
UNTIL ?=
BUDGET ?= 900
WORKLOAD ?= example
CLASS ?= ReadUser
FAIL_ON ?=
REPLICAS ?= 2
WORKERS ?= 2
TARGET ?= http://nginx:80
# 4 test files at a time keep both cores 80-90% busy here; 6 were no faster and failed more.
TEST_WORKERS ?= 4
# The timing tests two files at a time: the split run on one worker (52 s of CPU in 87 s here),
# the others one after another on the second (53 s in 98 s), so the generator-limit tests never
# overlap the Redis-outage run. One at a time took 193 s; two, 112 s. Three took 93 s but failed
# in CI: the outage's recovery, judged on latency, never came while a generator test saturated
# a core beside it.
QUIET_WORKERS ?= 2
# Whole files to a worker, in the order tests/conftest.py sorts them (long-running files first):
# xdist's default reorder by test count sent files of few tests but 50-70 s fixtures last
# (parallel phase 202-215 s reordered, 186-194 s in this order).
XDIST_ORDER := --dist loadfile --no-loadscope-reorder
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.DEFAULT_GOAL := help
.PHONY: help setup bytecode test bench bench-full resume report compare selftest decide history micro serve locust compose-up \
	compose-bench compose-test compose-down lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# uv installs the same versions as pip in a third of the time (64 s -> 22 s here, bytecode
# included: with PYTHONDONTWRITEBYTECODE set nothing would compile later); pip is the fallback
# where uv cannot be installed or cannot reach the index.
$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv && $(PY) -m uv pip install --quiet --python $(PY) \
		--compile-bytecode -e '.[dev]' \
		|| { $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -e '.[dev]'; }
	touch $(READY)

setup: $(READY) ## create .venv and install authbench with its dependencies

# Every server and Locust process imports our packages. Where PYTHONDONTWRITEBYTECODE is set (it
# is on this machine) Python never saves what it compiles, and each process compiled them anew:
# 0.4 s of CPU per process here. compileall writes them once, then only what changed.
bytecode: $(READY)
	@$(PY) -m compileall -q authbench common targets loadtests analysis

test: bytecode ## run the test suite (real servers, real Redis): TEST_WORKERS files at a time, then the timing tests
	$(PY) -m pytest -n $(TEST_WORKERS) $(XDIST_ORDER) -m "not quiet_machine"
	$(PY) -m pytest -n $(QUIET_WORKERS) $(XDIST_ORDER) -m quiet_machine

bench: bytecode ## run the quick matrix (about 8 min) and report it; UNTIL=decided [BUDGET=900] repeats what is undecided
	$(AB) run --matrix $(MATRIX) $(if $(UNTIL),--until $(UNTIL) --budget-s $(BUDGET)) $(if $(FAIL_ON),--fail-on '$(FAIL_ON)')

bench-full: $(READY) ## run the full matrix (every scenario, 1/2/4 nodes, 3 repetitions) and report
	@$(MAKE) --no-print-directory bench MATRIX=full

resume: bytecode ## finish an interrupted run (failed cells too) and report it: make resume RUN=<run-id>
	$(AB) run --resume $(RUN)

report: $(READY) ## rebuild a run's figures, report and summary.json from its raw files: make report RUN=<run-id>
	$(AB) report $(RUN)

compare: $(READY) ## two runs side by side: make compare A=<run-id> B=<run-id>
	$(AB) compare $(A) $(B)

decide: $(READY) ## cores and cost per scheme for your workload: make decide WORKLOAD=file.toml [RUN=latest]
	$(AB) decide $(RUN) --workload $(WORKLOAD)

selftest: bytecode ## the statistics on known truths: an A/A pair of runs, one with a planted CPU cost (~10 min)
	$(AB) selftest --plant $(PLANT)

history: $(READY) ## index every run and chart the headline figures across them (results/history/)
	$(AB) history

micro: $(READY) ## print the in-process cost of each primitive (make bench saves it as micro.csv)
	$(AB) micro

serve: $(READY) ## run one reference server: make serve SCHEME=jwt ALG=ES256 [PORT=8000] (session: Redis at REDIS_URL)
	$(AB) serve --scheme $(SCHEME) $(if $(ALG),--alg $(ALG)) --port $(PORT)

locust: $(READY) ## Locust web UI against a running target: make locust HOST=http://127.0.0.1:8000 [CLASS=ReadUser]
	$(VENV)/bin/locust -f loadtests/locustfile.py --host $(HOST) $(CLASS)

compose-up: ## system under test in containers: make compose-up SCHEME=jwt ALG=ES256 REPLICAS=3
	SCHEME=$(SCHEME) ALG=$(ALG) $(COMPOSE) --profile sut up -d --build --scale app=$(REPLICAS)

compose-bench: $(READY) ## distributed Locust (master + WORKERS) against the compose SUT; results/compose/
	rm -rf results/compose  # the last load run's parts: collected already, never merged into this one
	TARGET=$(TARGET) WORKERS=$(WORKERS) $(COMPOSE) --profile loadgen up --build \
		--scale locust-worker=$(WORKERS) \
		--abort-on-container-exit --exit-code-from locust-master locust-master locust-worker
	$(PY) -m loadtests.compose_stack collect results/compose

compose-test: $(READY) ## build and run the compose stack for real (dockerd, images, load, checks), then remove it
	$(PY) -m loadtests.compose_stack test

compose-down: ## stop and remove every compose container and volume
	$(COMPOSE) --profile sut --profile loadgen down --volumes --remove-orphans

lint: $(READY) ## ruff check, format check and the import floors (import-linter)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: $(READY) ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean: ## remove .venv and caches (results are kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
