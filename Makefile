# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PROVENANCE_HOME ?= $(CURDIR)/.provenance-home

.PHONY: demo test lint typecheck unit fuzz screenshots bench bench-watermark bench-stamp bench-sign bench-memory bench-likeness bench-resolution bench-store bench-audio bench-audio-likeness bench-audio-calibrate clean

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
	$(BIN)/python -m pytest -rs

# The fuzz targets of tests/test_fuzz.py with thousands of mutated files each
# (make test runs 50 per target); FUZZ_EXAMPLES=N to choose how many.
FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP)
	PROVENANCE_FUZZ=fuzz PROVENANCE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:cacheprovider tests/test_fuzz.py

# The verify page's screenshots in docs/screenshots, taken by its browser tests (needs Debian's chromium).
screenshots: $(STAMP)
	PROVENANCE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_browser.py

# invisible-watermark declares torch (a multi-GB CUDA build) for rivaGan, whose
# torch use is a tensor conversion the benchmark shims; install it without deps.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m pip install --quiet --no-deps 'invisible-watermark==0.2.0'
	touch $@

bench: bench-watermark bench-stamp bench-sign bench-memory bench-likeness bench-resolution bench-store bench-audio bench-audio-likeness

bench-watermark: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.watermark_bench

# pinned to one core (the speed rows are one-core numbers); espeak-ng (Debian) adds
# synthetic speech if installed
bench-audio: $(VENV)/.bench-installed
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 1 $(BIN)/python -m benchmarks.audio_bench

# Stamped clip after codecs and cuts vs identifiers copied onto other audio (about a minute).
bench-audio-likeness: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 1 $(BIN)/python -m benchmarks.audio_likeness_bench

# false positives only: 10,000 unmarked windows + 1,000 wrong-key checks (~25 min on one core)
bench-audio-calibrate: $(VENV)/.bench-installed
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 1 $(BIN)/python -m benchmarks.audio_bench --calibrate

bench-stamp: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks.stamp_bench

bench-sign: $(STAMP)
	$(BIN)/python -m benchmarks.sign_bench

# Peak memory of verify/sign/stamp on a 1 GB video and a 200 MP image (needs
# PyAV from the bench extra; ~3 GB of temporary files) -> benchmarks/results/memory.txt
bench-memory: $(VENV)/.bench-installed
	taskset -c 1 $(BIN)/python -m benchmarks.memory_bench

# Genuine vs copied-identifier likeness on 34 pictures (about 20 minutes on one core).
bench-likeness: $(STAMP)
	taskset -c 1 $(BIN)/python -m benchmarks.likeness_bench

# 1,000,000-record store, loopback HTTP (server on core 0, load on core 1): a few minutes.
# Another backend: $(BIN)/python -m benchmarks.resolution_bench --store URL
bench-resolution: $(STAMP)
	$(BIN)/python -m benchmarks.resolution_bench

# 1,000,000 records in SQLite and PostgreSQL (a throwaway server from the Debian
# package); pins its lookup client to CPU 1 and the server to CPU 0 itself.
bench-store: $(STAMP)
	$(BIN)/python -m benchmarks.store_bench

clean:
	rm -rf $(VENV) .provenance-home .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
