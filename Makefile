# The two commands first: `make demo` and `make test` (README).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo bench lint format lock clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

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
