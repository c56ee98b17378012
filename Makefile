# One entry point for contributors and CI. `make demo` and `make check` are the README quick start.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup bytecode postgres demo check fmt lint types docs test bench clean

setup: $(VENV)/.installed bytecode

# What pip does for a regular install: the package byte-compiled, so that no `syncd` process
# compiles its modules again (an editable install under PYTHONDONTWRITEBYTECODE=1 otherwise
# compiles all of them at every start, ~0.2 s). Up-to-date files are skipped.
bytecode: $(VENV)/.installed
	$(BIN)/python -m compileall -q syncd

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

postgres:
	scripts/ensure-postgres

demo: setup postgres  ## set up, then run the main job against the sandbox and a local PostgreSQL
	$(BIN)/syncd demo

check: setup postgres fmt lint types docs test  ## the quality gate: format, lint, types, docs, tests

fmt:
	$(BIN)/ruff format --check syncd tests bench

lint:
	$(BIN)/ruff check syncd tests bench

types:
	$(BIN)/mypy

docs: setup  ## the documentation site (docs/, mkdocs.yml) into build/site; a broken link fails
	$(BIN)/mkdocs build --strict --quiet

test:
	$(BIN)/pytest -n 2

bench: setup postgres  
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
