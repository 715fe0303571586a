"""Reliability under hostile or special inputs (issue 10: cases 1, 4-7, 10, 12, 15, 16).

Each test reproduces a case from the reliability probe and asserts what a user
relies on: the exit code, no traceback, no output or a valid one, no stray files.
Signals go to real subprocesses; FIFOs and non-UTF-8 names are made in temp dirs.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import c2pa
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from manifests import GenerationInfo
from provenance._internal.files import atomic_write, remove_stale_temporaries
from provenance.errors import CorruptInputError, UnsupportedFormatError
from provenance.keys import Identity
from provenance.sign import sign_bytes, sign_file, sign_image
from provenance.verify import State, verify_bytes, verify_file
from tests.conftest import MEDIA, encode, photo

INFO = GenerationInfo(generator="reliability-test", model="m-1")
PROVENANCE = Path(sys.executable).parent / "provenance"


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(PROVENANCE), *args], capture_output=True, timeout=60)


def _no_traceback(stderr: str | bytes) -> None:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text and "panicked" not in text, text


def _only(folder: Path, *names: str) -> None:
    """The folder holds exactly ``names``: no temporary file left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def _sparse_mp4(path: Path, size: int) -> None:
    """A structurally valid MP4 of ``size`` bytes: the test clip plus a sparse ``free`` box."""
    clip = (MEDIA / "clip.mp4").read_bytes()
    pad = size - len(clip)
    with path.open("wb") as handle:
        handle.write(clip + pad.to_bytes(4, "big") + b"free")
        handle.truncate(size)


def _opened_in(pid: int, folder: Path, timeout: float = 30.0) -> bool:
    """Wait until process ``pid`` has a file open in ``folder`` (its temporary output)."""
    deadline = time.monotonic() + timeout
    prefix = str(folder) + "/"
    while time.monotonic() < deadline:
        try:
            targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            targets = []
        if any(t.startswith(prefix) and not t.endswith("in.mp4") for t in targets):
            return True
        time.sleep(0.01)
    return False


# -- case 1: Ctrl-C during sign of a large file ------------------------------------------------


def test_ctrl_c_while_signing_a_large_video_leaves_nothing_and_exits_130(
    identity_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in.mp4"
    _sparse_mp4(src, 300 * 2**20)
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [str(PROVENANCE), "sign", str(src), "-o", str(out), "--identity", str(identity_dir), "--model", "m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _opened_in(proc.pid, tmp_path), "sign never opened its output"
        time.sleep(0.2)  # inside the C2PA library's hashing and copying
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    _no_traceback(stderr)
    assert proc.returncode == 130, stderr
    assert stderr.decode().strip() == "interrupted" and stdout == b""
    _only(tmp_path, "in.mp4")  # no output, no temporary file


def test_ctrl_c_during_native_reads_aborts_them_instead_of_truncating(
    identity: Identity, tmp_path: Path
) -> None:
    # In-process: SIGINT while c2pa-python reads the asset through a callback
    # must make the signing fail as interrupted, never produce a short output.
    data = (MEDIA / "clip.mp4").read_bytes()

    class Slow(io.BytesIO):
        def readinto(self, buffer: object) -> int:  # type: ignore[override]
            os.kill(os.getpid(), signal.SIGINT)  # the signal lands mid-read
            return super().readinto(buffer)  # type: ignore[arg-type]

    from provenance._internal import c2pa_bridge
    from provenance.sign import signing_settings

    definition = INFO.manifest_definition(title="x")
    definition["format"] = "video/mp4"
    with pytest.raises(KeyboardInterrupt):
        c2pa_bridge.sign_stream(
            definition,
            signing_settings(),
            identity,
            "video/mp4",
            Slow(data),
            io.BytesIO(),
            resources={},
            ingredients=[],
            name="clip.mp4",
        )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- case 4: corrupt AVIF -----------------------------------------------------------------------


def _corrupt_avif() -> bytes:
    good = encode(photo("astronaut", (320, 320)), "AVIF", quality=60)
    damaged = bytearray(good)
    at = int(len(good) * 0.9)
    damaged[at : at + 64] = bytes(64)
    with pytest.raises(RuntimeError, match="decode"):  # what Pillow/pillow-heif raise
        Image.open(io.BytesIO(bytes(damaged))).load()
    return bytes(damaged)


def test_corrupt_avif_is_exit_4_in_detect_verify_and_sign(identity_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.avif"
    bad.write_bytes(_corrupt_avif())
    runner = CliRunner()
    for args in (
        ["watermark", "detect", str(bad)],
        ["verify", str(bad)],
        ["sign", str(bad), "-o", str(tmp_path / "o.avif"), "--identity", str(identity_dir), "--model", "m"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 4, (args, result.stderr)
        assert result.stderr.startswith("error: ") and "corrupt" in result.stderr
        assert result.stdout == ""
    _only(tmp_path, "bad.avif")


# -- case 5: damaged manifests are a verdict --------------------------------------------------


def _damage(signed: bytes, how: str) -> bytes:
    data = bytearray(signed)
    if how == "no claim box":
        at = signed.find(b"c2cl")
        data[at : at + 4] = b"XXXX"
    elif how == "no signature box":
        at = signed.find(b"c2cs")
        data[at : at + 4] = b"XXXX"
    elif how == "bad CBOR":
        at = signed.find(b"c2pa.signature") + len(b"c2pa.signature")
        data[at : at + 8] = b"\xff" * 8
    elif how == "bad certificate":
        at = signed.find(b"\x30\x82", signed.find(b"c2cs"))
        data[at] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("how", ["no claim box", "no signature box", "bad CBOR", "bad certificate"])
def test_verify_of_a_damaged_mp4_is_invalid_and_never_talks_about_signing(
    how: str, identity: Identity, tmp_path: Path
) -> None:
    signed = sign_bytes((MEDIA / "clip.mp4").read_bytes(), identity, INFO).data
    assert signed is not None
    damaged = _damage(signed, how)
    with pytest.raises(c2pa.C2paError):  # the reference implementation cannot even read it
        c2pa.Reader("video/mp4", io.BytesIO(damaged))
    path = tmp_path / "damaged.mp4"
    path.write_bytes(damaged)
    result = CliRunner().invoke(cli, ["verify", str(path), "--json"])
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["state"] == "invalid" and doc["failures"] == ["provenance.manifest.damaged"]
    assert "sign" not in doc["summary"].lower() and "key" not in doc["summary"].lower()
    assert result.stderr == ""
    assert verify_bytes(damaged).state is State.INVALID


def test_a_truncated_container_is_still_a_file_error(identity: Identity) -> None:
    signed = sign_bytes((MEDIA / "clip.mp4").read_bytes(), identity, INFO).data
    assert signed is not None
    with pytest.raises(CorruptInputError, match="truncated or corrupt"):
        verify_bytes(signed[:5000])


# -- case 6: truncated GIF, malformed SVG --------------------------------------------------------


def _animation(fmt: str, frames: int = 4, **options: object) -> bytes:
    images = [photo("astronaut", (160, 160)).rotate(20 * i) for i in range(frames)]
    if fmt == "GIF":
        images = [im.convert("P") for im in images]
    out = io.BytesIO()
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=100, **options)
    return out.getvalue()


def test_a_gif_cut_after_its_first_frame_is_refused(identity: Identity, tmp_path: Path) -> None:
    gif = _animation("GIF")
    cut = gif[: int(len(gif) * 0.6)]
    Image.open(io.BytesIO(cut)).load()  # the first frame still decodes: the old check passed
    with pytest.raises(CorruptInputError, match="truncated or corrupt"):
        sign_bytes(cut, identity, INFO)
    src, out = tmp_path / "cut.gif", tmp_path / "out.gif"
    src.write_bytes(cut)
    with pytest.raises(CorruptInputError):
        sign_file(src, out, identity, INFO)
    _only(tmp_path, "cut.gif")
    assert sign_bytes(gif, identity, INFO).data  # the whole file still signs


SVG_OK = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>\n'
SVG_BROKEN = b'<svg xmlns="http://www.w3.org/2000/svg" width="10"><rect width="3"</svg>'
SVG_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>'
)


def test_svg_must_be_well_formed_and_entity_free(identity: Identity) -> None:
    assert sign_bytes(SVG_OK, identity, INFO).mime == "image/svg+xml"
    with pytest.raises(CorruptInputError, match="not well-formed XML"):
        sign_bytes(SVG_BROKEN, identity, INFO)
    with pytest.raises(CorruptInputError, match="refused for safety"):
        sign_bytes(SVG_BOMB, identity, INFO)


# -- case 7: outputs that are not regular files ------------------------------------------------


def test_sign_never_replaces_a_fifo_or_a_symlink_to_one(identity_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(encode(photo("astronaut", (200, 200)), "PNG"))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.png"
    link.symlink_to(fifo)
    runner = CliRunner()
    for target in (fifo, link):
        result = runner.invoke(
            cli, ["sign", str(src), "-o", str(target), "--identity", str(identity_dir), "--model", "m"]
        )
        assert result.exit_code == 4, result.stderr
        assert "FIFO" in result.stderr and "regular files" in result.stderr
        _no_traceback(result.stderr)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    _only(tmp_path, "in.png", "pipe", "link.png")


def test_sign_never_replaces_a_device_node(identity_dir: Path, tmp_path: Path) -> None:
    # The probe's `-o /dev/null` as root, on a private copy of the node (never the real one).
    src = tmp_path / "in.png"
    src.write_bytes(encode(photo("astronaut", (200, 200)), "PNG"))
    node = tmp_path / "null"
    if os.geteuid() == 0:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    else:  # only root can make device nodes; a symlink to the real one is read-only for us
        node.symlink_to("/dev/null")
    result = CliRunner().invoke(
        cli, ["sign", str(src), "-o", str(node), "--identity", str(identity_dir), "--model", "m"]
    )
    assert result.exit_code == 4, result.stderr
    assert "is a device; outputs are only written to regular files" in result.stderr
    assert stat.S_ISCHR(os.stat(node).st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    _only(tmp_path, "in.png", "null")


def test_atomic_write_refuses_a_fifo_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(Exception, match="FIFO"):
        atomic_write(fifo, b"data")  # would block forever if it opened the FIFO
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# -- case 10: non-UTF-8 file names ---------------------------------------------------------------


def test_non_utf8_file_names_sign_and_are_shown_escaped(identity_dir: Path, tmp_path: Path) -> None:
    raw_src = os.fsencode(tmp_path) + b"/caf\xe9\xff.png"
    raw_out = os.fsencode(tmp_path) + b"/out-\xff.png"
    with open(raw_src, "wb") as handle:
        handle.write(encode(photo("astronaut", (200, 200)), "PNG"))
    src, out = os.fsdecode(raw_src), os.fsdecode(raw_out)  # what click hands over: surrogates
    runner = CliRunner()
    result = runner.invoke(cli, ["sign", src, "-o", out, "--identity", str(identity_dir), "--model", "m"])
    assert result.exit_code == 0, result.stderr
    assert "caf\\xe9\\xff.png" in result.stderr and "out-\\xff.png" in result.stderr
    assert os.path.exists(raw_out)
    verified = runner.invoke(cli, ["verify", out, "--json"])
    assert verified.exit_code == 0, verified.stderr
    doc = json.loads(verified.stdout)
    assert doc["active_manifest"]["title"] == "caf\\xe9\\xff.png"  # escaped, not lost
    missing = runner.invoke(cli, ["verify", os.fsdecode(os.fsencode(tmp_path) + b"/gone-\xfe.png")])
    assert missing.exit_code == 4 and "gone-\\xfe.png: no such file" in missing.stderr


# -- case 12: temporary files of killed runs ---------------------------------------------------


def test_temporary_files_of_a_killed_sign_are_removed_by_the_next_run(
    identity_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in.mp4"
    _sparse_mp4(src, 300 * 2**20)
    out = tmp_path / "out.mp4"
    args = ["sign", str(src), "-o", str(out), "--identity", str(identity_dir), "--model", "m"]
    proc = subprocess.Popen([str(PROVENANCE), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _opened_in(proc.pid, tmp_path)
        time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("in.mp4",)]
    # An unnamed (O_TMPFILE) output leaves nothing at all; a named one carries the dead pid.
    assert all(re.fullmatch(rf"\.out\.mp4\.provenance-{proc.pid}-[0-9a-f]{{8}}\.tmp", n) for n in leftovers)
    assert not out.exists()
    # A live process's temporary file is left alone; a dead one's is removed.
    live = tmp_path / f".out.mp4.provenance-{os.getpid()}-0123abcd.tmp"
    live.write_bytes(b"in progress")
    assert remove_stale_temporaries(tmp_path, "out.mp4") == [tmp_path / n for n in leftovers]
    small = tmp_path / "small.mp4"
    small.write_bytes((MEDIA / "clip.mp4").read_bytes())
    done = CliRunner().invoke(
        cli, ["sign", str(small), "-o", str(out), "--identity", str(identity_dir), "--model", "m"]
    )
    assert done.exit_code == 0, done.stderr
    _only(tmp_path, "in.mp4", "small.mp4", "out.mp4", live.name)


# -- case 15: animations are never flattened silently -----------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_animations_keep_every_frame_when_signed_and_are_refused_by_stamp(
    fmt: str, identity: Identity, identity_dir: Path, tmp_path: Path
) -> None:
    data = _animation(fmt)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 4
    if fmt == "TIFF":
        # The C2PA library damages every page after the first: refused, not signed broken.
        with pytest.raises(UnsupportedFormatError, match="4 pages"):
            sign_bytes(data, identity, INFO)
    else:
        signed = sign_bytes(data, identity, INFO).data
        assert signed is not None
        reread = Image.open(io.BytesIO(signed))
        assert reread.n_frames == 4  # type: ignore[attr-defined]
        reread.seek(3)
        reread.load()
        again = sign_image(Image.open(io.BytesIO(data)), identity, INFO, format=fmt).data
        assert again is not None and Image.open(io.BytesIO(again)).n_frames == 4  # type: ignore[attr-defined]
    src = tmp_path / f"anim.{fmt.lower()}"
    src.write_bytes(data)
    runner = CliRunner()
    for args in (
        ["stamp", str(src), "-o", str(tmp_path / "stamped"), "--identity", str(identity_dir), "--json"],
        ["watermark", "embed", str(src), "-o", str(tmp_path / "wm.out"), "--payload", "00" * 8],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code != 0, (args, result.stdout, result.stderr)
        assert re.search(r"has 4 (frames|pages)", result.stdout + result.stderr), result.stderr
        _no_traceback(result.stderr)
    assert not (tmp_path / "wm.out").exists()
    assert not list(tmp_path.glob("stamped/**/anim*"))  # nothing stamped (the batch's lock file may be there)


def test_an_animation_cannot_be_encoded_as_a_single_frame_format(identity: Identity) -> None:
    with pytest.raises(UnsupportedFormatError, match="4 frames"):
        sign_image(Image.open(io.BytesIO(_animation("GIF"))), identity, INFO, format="JPEG")


# -- case 16: non-regular inputs, bounded reads -------------------------------------------------


def test_devices_and_fifos_are_refused_at_once_not_read_forever(identity_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    done = _cli("verify", str(fifo))  # a real process with a 60 s timeout: reading would block forever
    assert done.returncode == 4, done.stderr
    assert done.stderr.decode().endswith("is a FIFO (named pipe); only regular files are read\n")
    runner = CliRunner()
    for args in (
        ["verify", "/dev/zero"],
        ["sign", str(fifo), "-o", str(tmp_path / "o.png"), "--identity", str(identity_dir), "--model", "m"],
        ["watermark", "detect", str(fifo)],
        ["watermark", "detect", "/dev/zero"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 4, (args, result.stderr)
        assert re.search(r"is a (device|FIFO \(named pipe\)); only regular files are read", result.stderr)
        _no_traceback(result.stderr)
    _only(tmp_path, "in.fifo")


def test_verify_file_streams_large_videos(identity: Identity, tmp_path: Path) -> None:
    # The whole file is never held in memory: verify_file reads it through a
    # stream (peak memory is measured by benchmarks/memory_bench.py).
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _sparse_mp4(src, 64 * 2**20)
    sign_file(src, out, identity, INFO)
    assert verify_file(out).state is State.VALID
