"""Shared fixtures: a development identity, real photographs, the C2PA public test files."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import c2pa
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from provenance.keys import Identity, create_development_identity, load_identity_dir
from provenance.trust import TrustPolicy

from .pgserver import INSTALL_HINT, PostgresServer, find_binaries

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = Path(__file__).resolve().parent / "fixtures" / "c2pa"
PUBLIC_JPEGS = PUBLIC / "image" / "jpeg"
PUBLIC_PDF = PUBLIC / "pdf" / "adobe-20240110-single_manifest_store.pdf"
MEDIA = Path(__file__).resolve().parent / "fixtures" / "media"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's real identity or store.
    monkeypatch.setenv("PROVENANCE_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("PROVENANCE_STORE", raising=False)


@pytest.fixture(scope="session")
def identity_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("identity")
    create_development_identity(folder)
    return folder


@pytest.fixture(scope="session")
def identity(identity_dir: Path) -> Identity:
    return load_identity_dir(identity_dir)


@pytest.fixture(scope="session")
def trusting_policy(identity_dir: Path) -> TrustPolicy:
    return TrustPolicy.from_files([identity_dir / "root-ca.pem"])


def photo(name: str = "astronaut", size: tuple[int, int] | None = None) -> Image.Image:
    array: np.ndarray[Any, Any] = getattr(skdata, name)()
    image = Image.fromarray(array)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image.resize(size) if size else image


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@pytest.fixture(scope="session")
def photo_jpeg() -> bytes:
    return encode(photo(), "JPEG", quality=90)


def reference_state(data: bytes, mime: str, settings: dict[str, Any] | None = None) -> str | None:
    """What c2pa-python itself says, for comparing verdicts."""
    ctx = c2pa.Context.from_dict(
        settings or {"verify": {"verify_trust": True, "remote_manifest_fetch": False, "ocsp_fetch": False}}
    )
    reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, ctx)
    if reader is None:
        return None
    with reader:
        return str(json.loads(reader.json())["validation_state"]).lower()


def reference_store(data: bytes, mime: str) -> dict[str, Any]:
    with c2pa.Reader(mime, io.BytesIO(data)) as reader:
        result: dict[str, Any] = json.loads(reader.json())
        return result


@pytest.fixture(autouse=True)
def _deterministic_identifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stamps draw random identifiers; the watermark recovers a given attack in
    # ~96-100% of payloads, so tests use a fixed sequence to be repeatable.
    import random

    import provenance

    stamp_module = sys.modules["provenance.stamp"]
    assert provenance is not None
    rng = random.Random(20261122)
    monkeypatch.setattr(stamp_module.secrets, "token_bytes", lambda n: rng.randbytes(n))


# --- PostgreSQL: one throwaway server per session, a fresh database per test ---


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_binaries()
    if bin_dir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{INSTALL_HINT} (CI must run the PostgreSQL tests; .ci/run installs it)")
        pytest.skip(INSTALL_HINT)
    server = PostgresServer(bin_dir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs once per backend: a SQLite path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "manifests.db")
    return str(request.getfixturevalue("postgres_url"))


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG, as a full disk fails with ENOSPC."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
