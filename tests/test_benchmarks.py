"""The benchmarks stay runnable: their synthetic store rows follow the store's schema.

A store column added without updating the benchmark broke ``make bench-store``
and ``make bench-resolution`` at import time once; nothing in the suite noticed.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import benchmarks
from benchmarks.store_bench import bulk_load, label_for, payload_for
from provenance.store import open_store


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)))
def test_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"benchmarks.{name}")


def test_synthetic_records_load_into_a_real_store(tmp_path: Path) -> None:
    location = tmp_path / "manifests.db"
    bulk_load(location, 5)
    with open_store(location) as store:
        entry = store.get_by_payload(payload_for(3))
        assert entry is not None
        assert entry.manifest_label == label_for(3)
        assert entry.fingerprint_audio is None
        assert entry.pdq_hash is not None and len(entry.pdq_hash) == 32
