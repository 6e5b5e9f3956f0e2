PYTHON ?= python3

.PHONY: install test test-fast acceptance lint format sample-data bench clean

install:  ## install crossmodal and its test tools into the current Python
	$(PYTHON) -m pip install -e '.[dev]'

test:  ## the whole suite: unit, end-to-end, and acceptance (skipped without ../shared/datasets)
	$(PYTHON) -m pytest -q

test-fast:  ## unit tests only
	$(PYTHON) -m pytest -q -m "not acceptance and not e2e"

acceptance:  ## real-data acceptance tests on ../shared/datasets/avdigits
	$(PYTHON) -m pytest -q -m acceptance

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
