"""``-v``: our debug logs and tracebacks on stderr, never a third-party library's internals."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli


@pytest.fixture
def tiff(tmp_path: Path) -> Path:
    # Pillow logs every TIFF tag it reads at DEBUG: the noisiest input there is.
    path = tmp_path / "in.tif"
    Image.new("RGB", (120, 80), "teal").save(path)
    return path


def _sign(tiff: Path, identity_dir: Path, *flags: str):  # type: ignore[no-untyped-def]
    out = tiff.with_name(f"out{len(flags)}.tif")
    args = [*flags, "sign", str(tiff), "-o", str(out), "--identity", str(identity_dir), "--model", "m"]
    return CliRunner().invoke(cli, args)


def test_verbose_shows_our_debug_logs_not_pillows(tiff: Path, identity_dir: Path) -> None:
    result = _sign(tiff, identity_dir, "-v")
    assert result.exit_code == 0, result.stderr
    assert "DEBUG provenance.sign: signing" in result.stderr
    assert "DEBUG provenance.keys: identity" in result.stderr
    assert "PIL" not in result.stderr and "tag:" not in result.stderr
    assert "BEGIN" not in result.stderr and "PRIVATE" not in result.stderr  # keys are never logged
    assert result.stdout == ""


def test_without_verbose_no_debug_at_all(tiff: Path, identity_dir: Path) -> None:
    _sign(tiff, identity_dir, "-v")  # a verbose run before must not leak into the next one
    result = _sign(tiff, identity_dir)
    assert result.exit_code == 0, result.stderr
    assert "DEBUG" not in result.stderr
    assert logging.getLogger("provenance").getEffectiveLevel() == logging.WARNING


@pytest.fixture
def lowered_root() -> Iterator[None]:
    # As an embedding application's basicConfig(level=DEBUG) would; restored afterwards
    # through setLevel, which also clears logging's cached effective levels.
    root, pil = logging.getLogger(), logging.getLogger("PIL")
    saved = root.level, pil.level
    root.setLevel(logging.DEBUG)
    pil.setLevel(logging.NOTSET)
    yield
    root.setLevel(saved[0])
    pil.setLevel(saved[1])


@pytest.mark.usefixtures("lowered_root")
def test_third_party_loggers_stay_quiet_even_if_the_root_was_lowered(tiff: Path, identity_dir: Path) -> None:
    result = _sign(tiff, identity_dir, "-v")
    assert result.exit_code == 0, result.stderr
    assert "PIL" not in result.stderr
    assert logging.getLogger("PIL.TiffImagePlugin").getEffectiveLevel() == logging.WARNING


def test_verbose_error_shows_our_traceback(tmp_path: Path, identity_dir: Path) -> None:
    missing = tmp_path / "missing.png"
    args = ["sign", str(missing), "-o", str(tmp_path / "o.png"), "--identity", str(identity_dir)]
    quiet = CliRunner().invoke(cli, [*args, "--model", "m"])
    loud = CliRunner().invoke(cli, ["-v", *args, "--model", "m"])
    assert quiet.exit_code == loud.exit_code == 4
    assert "Traceback" not in quiet.stderr and quiet.stderr.startswith("error: ")
    assert "Traceback" in loud.stderr and "provenance/_internal/files.py" in loud.stderr
