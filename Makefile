# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PROVENANCE_HOME ?= $(CURDIR)/.provenance-home

.PHONY: demo test lint typecheck unit screenshots bench bench-watermark bench-audio bench-stamp bench-sign bench-resolution clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check provenance manifests watermark cli tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy provenance manifests watermark cli

unit: $(STAMP)
	$(BIN)/python -m pytest

# The verify page's screenshots in docs/screenshots, taken by its browser tests (needs Debian's chromium).
screenshots: $(STAMP)
	PROVENANCE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_browser.py

# invisible-watermark declares torch (a multi-GB CUDA build) for rivaGan, whose
# torch use is a tensor conversion the benchmark shims; install it without deps.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m pip install --quiet --no-deps 'invisible-watermark==0.2.0'
	touch $@

bench: bench-watermark bench-audio bench-stamp bench-sign bench-resolution

bench-watermark: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.watermark_bench

# pinned to one core (the speed rows are one-core numbers); espeak-ng (Debian) adds
# synthetic speech if installed
bench-audio: $(VENV)/.bench-installed
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 1 $(BIN)/python -m benchmarks.audio_bench

bench-stamp: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.stamp_bench

bench-sign: $(STAMP)
	$(BIN)/python -m benchmarks.sign_bench

# 1,000,000-record store, loopback HTTP (server on core 0, load on core 1): a few minutes.
# Another backend: $(BIN)/python -m benchmarks.resolution_bench --store URL
bench-resolution: $(STAMP)
	$(BIN)/python -m benchmarks.resolution_bench

clean:
	rm -rf $(VENV) .provenance-home .pytest_cache .mypy_cache .ruff_cache build *.egg-info
