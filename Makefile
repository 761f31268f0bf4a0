# Set-up and test entry points. Both create .venv with the machine's python3.11
# (or python3) and install the package with its development extra into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-flask test lint schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

demo-flask: $(STAMP)
	$(BIN)/python -m examples.demo --gateway flask

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/python -c 'import json; from llmobs_core.schema import json_schema; \
		print(json.dumps(json_schema(), indent=2, sort_keys=True))' > docs/llm_call_log.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
