# Set-up and test entry points. Both create .venv with the machine's python3.11
# (or python3) and install the package with its development extra into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-flask test tools lint schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

demo-flask: $(STAMP)
	$(BIN)/python -m examples.demo --gateway flask

test: $(STAMP) tools
	$(BIN)/python -m pytest

# promtool and prometheus from Debian's package, for the tests of
# deploy/prometheus and deploy/grafana, and redis-server for the tests of
# the Redis budget store; skipped without apt-get or root.
tools:
	sh deploy/prometheus/install-tools.sh
	sh deploy/install-redis.sh
	sh deploy/install-chromium.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/python -c 'import json; from llmobs_core.schema import json_schema; \
		print(json.dumps(json_schema(), indent=2, sort_keys=True))' > docs/llm_call_log.schema.json

# Benchmarks (docs/benchmarks.md): installs the bench extra, and wrk with
# apt-get where wrk is missing and apt-get exists. BENCH_ARGS=--quick runs a
# smoke pass of under a minute.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		apt-get install -y -qq wrk >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq wrk; } || \
		echo "wrk could not be installed; the server benchmark will be skipped"
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
