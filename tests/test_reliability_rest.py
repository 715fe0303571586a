"""Reliability, the rest of issue 10: a store failing mid-verify, Ctrl-C during start-up,
unnamed (O_TMPFILE) temporary outputs, non-UTF-8 names in ``verify --json``.

Signals go to real subprocesses; the failing store is a real SQLite file whose
table pages are damaged after it was written (it opens, its queries fail).
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import watermark
from cli.main import cli
from manifests import GenerationInfo
from provenance._internal import files, images
from provenance._internal.files import atomic_output, atomic_write
from provenance.errors import CorruptInputError, OutputError
from provenance.keys import Identity
from provenance.stamp import stamp
from provenance.store import open_store
from provenance.verify import State, verify_file
from tests.conftest import encode, photo

INFO = GenerationInfo(generator="reliability-test", model="m-1")
PROVENANCE = Path(sys.executable).parent / "provenance"


def _no_traceback(stderr: str | bytes) -> None:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text and "panicked" not in text, text


# -- a store that opens but fails later ---------------------------------------------------------


def _store_failing_on_queries(path: Path) -> None:
    """Damage every page of ``path`` but the first: the schema (page 1) still reads, so the
    store opens, but any query of its entries fails as "malformed"."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = int(db.execute("PRAGMA page_size").fetchone()[0])
    db.close()
    size = path.stat().st_size
    assert size > page
    with path.open("r+b") as handle:
        handle.seek(page)
        handle.write(b"\xa5" * (size - page))


@pytest.fixture
def stamped_with_broken_store(identity: Identity, tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "manifests.db"
    out = tmp_path / "stamped.png"
    with open_store(db) as store:
        stamp(encode(photo("astronaut", (384, 384)), "PNG"), identity, INFO, store=store, output=out)
    _store_failing_on_queries(db)
    opened = open_store(db)  # it opens ...
    with pytest.raises(Exception, match="malformed"):  # ... and fails on the first lookup
        opened.get_by_payload(bytes(8))
    opened.close()
    return out, db


def test_a_store_failing_mid_verify_still_verifies_the_embedded_credentials(
    stamped_with_broken_store: tuple[Path, Path],
) -> None:
    out, db = stamped_with_broken_store
    result = CliRunner().invoke(cli, ["verify", str(out), "--store", str(db)])
    assert result.exit_code == 0, result.stderr  # not 8: the file's own credentials are intact
    assert "VALID" in result.stdout
    assert "verified without the manifest store" in result.stdout  # the warning, in the report
    _no_traceback(result.stderr)
    as_json = CliRunner().invoke(cli, ["verify", str(out), "--store", str(db), "--json"])
    assert as_json.exit_code == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["state"] == "valid"
    assert doc["watermark"]["detected"] is True and doc["watermark"]["known_to_store"] is None
    assert any("malformed" in w and "without the manifest store" in w for w in doc["warnings"])


def test_a_store_failing_mid_verify_leaves_a_stripped_file_without_credentials(
    stamped_with_broken_store: tuple[Path, Path], tmp_path: Path
) -> None:
    out, db = stamped_with_broken_store
    stripped = tmp_path / "stripped.png"
    Image.open(out).save(stripped)  # pixels only: the credentials would come from the store
    with open_store(db) as store:
        result = verify_file(stripped, store=store)
    assert result.state is State.NONE and not result.recovered
    assert result.watermark is not None and result.watermark.detected
    assert any("without the manifest store" in w for w in result.warnings)


# -- Ctrl-C while the command is still starting -------------------------------------------------


def _wait_for_mapping(pid: int, library: str, timeout: float = 60.0) -> bool:
    """Wait until process ``pid`` has loaded a shared library whose path contains ``library``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/maps") as maps:
                if library in maps.read():
                    return True
        except OSError:
            return False
        time.sleep(0.002)
    return False


@pytest.mark.parametrize("library", ["_multiarray_umath", "PIL/_imaging"])
def test_ctrl_c_while_the_command_imports_its_libraries_exits_130_quietly(
    tmp_path: Path, library: str
) -> None:
    # The moment a heavy native library is mapped, the process is inside the
    # console script's imports (numpy, Pillow: loaded by cli.main's imports,
    # long before a command runs). Ctrl-C there used to print an import traceback.
    photo_path = tmp_path / "a.png"
    photo_path.write_bytes(encode(photo("astronaut", (64, 64)), "PNG"))
    proc = subprocess.Popen(
        [str(PROVENANCE), "verify", str(photo_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert _wait_for_mapping(proc.pid, library), f"{library} was never loaded"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    _no_traceback(stderr)
    assert proc.returncode == 130, stderr
    assert stderr.decode().strip() == "interrupted" and stdout == b""


# -- unnamed temporary outputs (O_TMPFILE) -------------------------------------------------------

def _entries(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_atomic_output_writes_through_an_unnamed_file_until_it_succeeds(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with atomic_output(dest) as handle:
        handle.write(b"new contents")
        # Nothing new is visible in the folder while the output is being written:
        # the data is in a file without a name (it vanishes if the process dies).
        assert _entries(tmp_path) == ["out.bin"]
        assert dest.read_bytes() == b"old"
        where = os.readlink(f"/proc/self/fd/{handle.fileno()}")
        assert where.startswith(str(tmp_path) + "/") and where.endswith("(deleted)"), where
        handle.seek(0)
        assert handle.read() == b"new contents"  # read-write, like the named fallback
    assert dest.read_bytes() == b"new contents"
    assert _entries(tmp_path) == ["out.bin"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~_umask()
    atomic_write(dest, b"secret", mode=0o600)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600 and dest.read_bytes() == b"secret"


def test_a_failed_or_killed_unnamed_output_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_output(dest) as handle:
        handle.write(b"half")
        raise RuntimeError("the writer failed")
    assert _entries(tmp_path) == []
    # kill -9 in the middle of writing: an unnamed file has nothing to clean up.
    code = (
        "import os, sys, time\n"
        "from provenance._internal.files import atomic_output\n"
        "with atomic_output(sys.argv[1]) as h:\n"
        "    h.write(b'x' * 1_000_000); h.flush()\n"
        "    print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(dest)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"writing\n"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert _entries(tmp_path) == []


def test_a_folder_whose_filesystem_cannot_link_unnamed_files_gets_a_named_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some mounts create O_TMPFILE files but refuse to give them a name (EXDEV in
    # containers): the probe finds out once and the named fallback is used.
    dest = tmp_path / "out.bin"
    real_link = os.link

    def refusing_link(src: str, dst: object, **kwargs: object) -> None:
        if str(src).startswith("/proc/self/fd/"):
            raise OSError(18, "Invalid cross-device link")
        real_link(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", refusing_link)
    monkeypatch.setattr(files, "_LINKABLE", {})
    with atomic_output(dest) as handle:
        handle.write(b"data")
        named = [n for n in _entries(tmp_path) if n != "out.bin"]
        assert len(named) == 1 and named[0].startswith(f".out.bin.provenance-{os.getpid()}-"), named
    assert dest.read_bytes() == b"data" and _entries(tmp_path) == ["out.bin"]
    assert {tmp_path.stat().st_dev: False} == files._LINKABLE


def test_an_unnamed_output_never_replaces_a_fifo_made_while_writing(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    with pytest.raises(OutputError, match="FIFO"), atomic_output(dest) as handle:
        handle.write(b"data")
        os.mkfifo(dest)
    assert stat.S_ISFIFO(os.lstat(dest).st_mode)
    assert _entries(tmp_path) == ["out.bin"]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# -- non-UTF-8 names in verify --json -----------------------------------------------------------


def test_verify_json_shows_non_utf8_names_escaped_like_the_text(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.png"
    with open(raw, "wb") as handle:
        handle.write(encode(photo("astronaut", (128, 128)), "PNG"))
    name = os.fsdecode(raw)
    runner = CliRunner()
    as_json = runner.invoke(cli, ["verify", name, "--json"])
    assert as_json.exit_code == 3, as_json.stderr
    assert "\\udc" not in as_json.stdout  # no lone surrogates in the JSON text
    doc = json.loads(as_json.stdout)
    assert doc["file"] == f"{tmp_path}/caf\\xe9-\\xff.png"
    as_text = runner.invoke(cli, ["verify", name])
    assert f"{tmp_path}/caf\\xe9-\\xff.png" in as_text.stdout


# -- bounded memory: large images decoded reduced (case 16; peak numbers in benchmarks/) ---------


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat a 1200x900 picture as "large", so the reduced paths run on small test files."""
    monkeypatch.setattr(images, "REDUCE_ABOVE", 100_000)
    monkeypatch.setattr(images, "ANALYSIS_SHORT_SIDE", 200)


def _big_photo() -> Image.Image:
    return photo("astronaut", (1200, 900))


def test_large_jpegs_are_decoded_by_dct_scaling(small_limits: None) -> None:
    reduced = images.load_for_analysis(encode(_big_photo(), "JPEG", quality=90), "a.jpg")
    assert reduced.size == (300, 225)  # 1/4 scale: short side 225 >= 200, 1/8 would be below
    assert reduced.mode == "RGB"


def test_large_pngs_are_shrunk_strip_wise_by_libvips(small_limits: None, tmp_path: Path) -> None:
    picture = _big_photo()
    path = tmp_path / "a.png"
    path.write_bytes(encode(picture, "PNG"))
    with files.open_input(path) as source:
        from_file = images.load_for_analysis(source, "a.png")
    from_bytes = images.load_for_analysis(path.read_bytes(), "a.png")
    assert from_file.size == from_bytes.size == (300, 225) and from_file.mode == "RGB"
    expected = np.asarray(picture.reduce(4), dtype=np.int16)
    assert np.abs(np.asarray(from_file, dtype=np.int16) - expected).max() <= 1  # a 4x4 box average
    grey16 = Image.fromarray(np.asarray(picture.convert("L"), dtype=np.uint16) * 257)
    assert grey16.mode == "I;16"
    shrunk = images.load_for_analysis(encode(grey16, "PNG"), "g.png")
    assert shrunk.mode == "L" and shrunk.size == (300, 225)
    rgba = images.load_for_analysis(encode(picture.convert("RGBA"), "PNG"), "t.png")
    assert rgba.mode == "RGBA"


def test_reduced_decoding_keeps_no_file_open(small_limits: None, tmp_path: Path) -> None:
    # libvips duplicates the descriptor it reads from; its operation cache would keep
    # every decoded file open (a folder of thousands would run out of descriptors).
    path = tmp_path / "a.png"
    path.write_bytes(encode(_big_photo(), "PNG"))

    def open_here() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if _points_to(fd, path))

    with files.open_input(path) as source:
        images.load_for_analysis(source, "a.png")
        for _ in range(3):
            images.load_for_analysis(source, "a.png")
        assert open_here() == 1  # only the input's own descriptor
    assert open_here() == 0


def _points_to(fd: str, path: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == str(path)
    except OSError:
        return False


def test_a_truncated_large_png_is_still_corrupt(small_limits: None) -> None:
    data = encode(_big_photo(), "PNG")
    with pytest.raises(CorruptInputError, match="truncated or corrupt"):
        images.load_for_analysis(data[: len(data) * 2 // 3], "cut.png")


def test_the_watermark_of_a_large_stamped_image_is_found_on_the_reduced_decode(
    small_limits: None, identity: Identity, tmp_path: Path
) -> None:
    db = tmp_path / "manifests.db"
    for fmt in ("PNG", "JPEG"):
        out = tmp_path / f"stamped.{fmt.lower()}"
        with open_store(db) as store:
            stamped = stamp(encode(_big_photo(), fmt, quality=92), identity, INFO, store=store, output=out)
            result = verify_file(out, store=store)
        assert result.state is State.VALID, result.summary
        assert result.watermark is not None and result.watermark.payload == stamped.identifier
        assert result.watermark.matches_manifest is True


def test_a_large_png_thumbnail_follows_its_exif_orientation(small_limits: None) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: portrait
    data = encode(_big_photo(), "PNG", exif=exif.tobytes())
    thumb = Image.open(io.BytesIO(images.thumbnail_jpeg(data, "a.png", 128)))
    assert thumb.size == (96, 128)


def test_marking_in_place_gives_the_same_pixels_as_a_copy() -> None:
    original = photo("astronaut", (400, 300))
    copy = watermark.embed(original, bytes(range(8)))
    target = original.copy()
    same = watermark.embed(target, bytes(range(8)), in_place=True)
    assert same is target and np.array_equal(np.asarray(same), np.asarray(copy))
    assert not np.array_equal(np.asarray(original), np.asarray(copy))  # the copy left it alone
    palette = original.convert("P")
    assert watermark.embed(palette, bytes(8), in_place=True).mode == "RGB"  # converted: a new image
    assert palette.mode == "P"


def test_large_images_are_reduced_before_the_luminance_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    from watermark import _image

    picture = photo("astronaut", (1600, 1200))
    exact = _image.work_luma(picture)
    monkeypatch.setattr(_image, "_REDUCE_FIRST_ABOVE", 100_000)
    reduced_first = _image.work_luma(picture)
    assert exact.shape == reduced_first.shape == (512, 683)
    assert np.abs(exact - reduced_first).max() <= 1.0  # rounding only
