# The two commands first: `make demo` and `make test` (README). `make test-fast` is the quick
# lane while editing (about a minute on 2 cores): every test except those marked slow (node
# processes, workers that import torch, seconds each) or gpu; lint is part of the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo bench lint format lock clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

demo: setup
	@bash tools/demo.sh

bench: setup
	$(VENV)/bin/bench --preset benchmark --out bench_out

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# Re-pin requirements/lock.txt from requirements/top.txt in a scratch venv.
lock:
	bash tools/lock.sh

clean:
	rm -rf build install log demo_out bench_out .pytest_cache
