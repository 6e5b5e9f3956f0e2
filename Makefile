PYTHON ?= python3
# One test file per worker process (pytest-xdist), a worker per CPU, up to 4: training a tiny
# model keeps about one core busy, so two cores finish the suite in about 63% of the time.
# Whole files keep their module-scoped models on one worker; the slowest files (the acceptance
# tests) come first in collection order, so they start first. PARALLEL= runs in one process.
PARALLEL ?= -n logical --maxprocesses 4 --dist loadfile --no-loadscope-reorder

.PHONY: install test test-fast acceptance lint format sample-data bench clean

install:  ## install crossmodal and its test tools into the current Python
	$(PYTHON) -m pip install -e '.[dev]'

test:  ## the whole suite: unit, end-to-end, and acceptance (skipped without ../shared/datasets)
	$(PYTHON) -m pytest -q $(PARALLEL)

test-fast:  ## unit tests only
	$(PYTHON) -m pytest -q $(PARALLEL) -m "not acceptance and not e2e"

acceptance:  ## real-data acceptance tests on ../shared/datasets/avdigits
	$(PYTHON) -m pytest -q $(PARALLEL) -m acceptance

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .

sample-data:  ## regenerate sample_data/ (deterministic)
	$(PYTHON) scripts/make_sample_data.py

bench:
	$(PYTHON) benchmarks/run.py

clean:
	rm -rf runs build dist *.egg-info .pytest_cache .ruff_cache
