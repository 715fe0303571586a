"""Batch stamping under stress: signals, kills, a full store, hostile folders, concurrent runs.

Signals go to real ``provenance stamp`` processes; every wait is a bounded
poll. After each scenario: the exit code, no traceback, no stray temporary
files or processes, and the store and the outputs describe each other
(every output has exactly one record, every record of this run an output).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import grp
import hashlib
import io
import json
import os
import pwd
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from cli.sign import generation_info
from manifests import GenerationInfo
from provenance.batch import LOCK_NAME, BatchInterrupted, stamp_tree
from provenance.errors import WatermarkFailure
from provenance.keys import load_identity_dir
from provenance.stamp import recorded_output_path, stamp
from provenance.store import SQLiteManifestStore, open_store
from provenance.verify import State, verify_file

from .conftest import encode, photo

CLI = [sys.executable, "-c", "from cli.main import main; main()"]
NAMES = ("astronaut", "coffee", "chelsea", "rocket", "camera")
DEADLINE = 60.0  # seconds: generous bound for every poll on a loaded machine


def _images(folder: Path, count: int, size: int = 256) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.jpg"
        path.write_bytes(encode(photo(NAMES[i % len(NAMES)], (size + 8 * i, size)), "JPEG", quality=90))
        paths.append(path)
    return paths


def _poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def _records(db: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as con:
        return list(con.execute("SELECT output_path, asset_sha256 FROM manifests"))


def _assert_consistent(out: Path, db: Path) -> None:
    """Every output has exactly one record describing it, every record an output."""
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    outputs = {recorded_output_path(p): p for p in files}
    records = _records(db)
    assert sorted(r[0] for r in records) == sorted(outputs), "records and outputs differ"
    for path, digest in records:
        assert hashlib.sha256(outputs[path].read_bytes()).hexdigest() == digest
    assert not [p for p in out.rglob("*.tmp")], "temporary files left behind"


class _Batch:
    """A ``provenance stamp`` subprocess whose stderr is read line by line."""

    def __init__(self, tmp: Path, *args: str, identity: Path, jobs: int = 2) -> None:
        self.db = tmp / "m.db"
        self.out = tmp / "out"
        command = [*CLI, "stamp", str(tmp / "in"), "-o", str(self.out), "-j", str(jobs)]
        command += ["--identity", str(identity), "--store", str(self.db), "--json", *args]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, like a shell job
        )
        self.lines: list[str] = []

    def read_until(self, predicate: Callable[[str], bool]) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if predicate(line):
                return
        raise AssertionError("the batch ended first:\n" + "\n".join(self.lines))

    def finish(self) -> tuple[int, dict[str, Any] | None, str]:
        out, err = self.process.communicate(timeout=DEADLINE)
        stderr = "\n".join(self.lines) + "\n" + err
        return self.process.returncode, json.loads(out) if out.strip() else None, stderr


def _stamped(line: str) -> bool:
    return line.startswith("stamped:")


def _count(report: dict[str, Any], status: str) -> int:
    """Files with ``status``; failures allowed only for the watermark's capacity.

    Subprocesses draw random identifiers (the tests' fixed sequence is
    in-process), and a small picture cannot hold a few percent of them: those
    files fail honestly, as they would for any user, and must not be recorded.
    """
    for f in report["files"]:
        if f["status"] == "failed":
            assert "does not survive encoding" in f["error"], f["error"]
    return sum(f["status"] == status for f in report["files"])


def _finished(code: int, report: dict[str, Any] | None) -> bool:
    """A completed batch: exit 0, or 6 only for files that failed for the watermark's capacity."""
    assert report is not None
    return code == (6 if _count(report, "failed") else 0)


@pytest.mark.parametrize(("sig", "group", "code"), [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)])
def test_a_signal_stops_the_batch_promptly_and_reports_what_was_done(
    tmp_path: Path, identity_dir: Path, sig: signal.Signals, group: bool, code: int
) -> None:
    # Ctrl-C reaches the whole process group; SIGTERM (kill PID) only the main process.
    _images(tmp_path / "in", 24)
    batch = _Batch(tmp_path, identity=identity_dir)
    batch.read_until(_stamped)
    workers = _descendants(batch.process.pid)
    if group:
        os.killpg(batch.process.pid, sig)
    else:
        batch.process.send_signal(sig)
    exit_code, report, stderr = batch.finish()
    assert exit_code == code, stderr
    assert "Traceback" not in stderr
    assert report is not None and report["interrupted"] is True
    done = [f for f in report["files"] if f["status"] == "stamped"]
    failed = _count(report, "failed")
    # Stopped at once: after the signal only the files already in progress finish.
    lines = stderr.splitlines()
    notice = next(i for i, line in enumerate(lines) if "finishing the files in progress" in line)
    assert sum(_stamped(line) for line in lines[notice:]) <= 2
    assert len(done) + failed + len(report["not_done"]) == 24
    assert len(report["not_done"]) > 0
    assert f"{len(report['not_done'])} not done" in stderr
    assert len(_records(batch.db)) == len(done)
    _assert_consistent(batch.out, batch.db)
    _poll(lambda: not any(_running(p) for p in workers), "the workers to exit")
    if group:  # re-running the same command finishes the rest, skipping what was done
        rerun = _run_cli(tmp_path, identity_dir)
        assert _finished(rerun.exit_code, json.loads(rerun.stdout)), rerun.stderr
        counts = json.loads(rerun.stdout)["counts"]
        assert (counts["stamped"] + counts["failed"], counts["skipped"]) == (24 - len(done), len(done))
        _assert_consistent(batch.out, batch.db)


def test_a_second_ctrl_c_abandons_the_files_in_progress(tmp_path: Path, identity_dir: Path) -> None:
    _images(tmp_path / "in", 24, size=512)
    batch = _Batch(tmp_path, identity=identity_dir)
    batch.read_until(_stamped)
    os.killpg(batch.process.pid, signal.SIGINT)
    batch.read_until(lambda line: "finishing the files in progress" in line)
    os.killpg(batch.process.pid, signal.SIGINT)
    exit_code, report, stderr = batch.finish()
    assert exit_code == 130, stderr
    assert "Traceback" not in stderr
    assert report is not None
    done = _count(report, "stamped")
    assert done + _count(report, "failed") + len(report["not_done"]) == 24
    # What the report calls done is exactly what is on disk and in the store.
    assert len(_records(batch.db)) == done
    _assert_consistent(batch.out, batch.db)


def test_workers_and_helpers_exit_with_a_killed_batch(tmp_path: Path, identity_dir: Path) -> None:
    _images(tmp_path / "in", 24)
    batch = _Batch(tmp_path, identity=identity_dir)
    batch.read_until(_stamped)
    helpers = _descendants(batch.process.pid)  # fork server, resource tracker, workers
    assert len(helpers) >= 3
    batch.process.kill()  # SIGKILL: nothing in the main process can react
    batch.process.communicate(timeout=DEADLINE)
    _poll(lambda: not any(_running(p) for p in helpers), "every helper process to exit")
    done_when_gone = len(_records(batch.db))
    assert done_when_gone < 24  # they stopped stamping instead of going on alone
    _assert_consistent(batch.out, batch.db)


def test_a_full_store_leaves_no_unrecorded_output(
    tmp_path: Path, identity_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _images(tmp_path / "in", 6)
    db = tmp_path / "m.db"
    # A store with room for about two records: SQLite's own "database or disk
    # is full", the error a full disk gives, deterministically.
    opened = SQLiteManifestStore.__init__

    def capped(self: SQLiteManifestStore, *args: Any, **kwargs: Any) -> None:
        opened(self, *args, **kwargs)
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count={pages + 24}")

    monkeypatch.setattr(SQLiteManifestStore, "__init__", capped)
    result = _run_cli(tmp_path, identity_dir)
    assert result.exit_code == 6, result.stderr
    report = json.loads(result.stdout)
    failed = [f for f in report["files"] if f["status"] == "failed"]
    assert 0 < report["counts"]["stamped"] < 6 and failed
    assert all("database or disk is full" in f["error"] for f in failed)
    for f in failed:
        assert not Path(f["output"]).exists()
    _assert_consistent(tmp_path / "out", db)


def test_a_symlink_loop_is_one_bad_entry(tmp_path: Path, identity_dir: Path) -> None:
    _images(tmp_path / "in", 2)
    (tmp_path / "in" / "self.jpg").symlink_to("self.jpg")
    (tmp_path / "in" / "a.jpg").symlink_to("b.jpg")
    (tmp_path / "in" / "b.jpg").symlink_to("a.jpg")
    (tmp_path / "in" / "gone.png").symlink_to("nowhere.png")
    (tmp_path / "in" / "sub").mkdir()
    (tmp_path / "in" / "sub" / "up").symlink_to("..")  # a folder loop: not followed
    result = _run_cli(tmp_path, identity_dir)
    assert result.exit_code == 6, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"] == {"stamped": 2, "skipped": 0, "ignored": 1, "failed": 4}
    errors = {Path(f["input"]).name: f["error"] for f in report["files"] if f["status"] == "failed"}
    assert "symbolic link loop" in errors["self.jpg"] and "symbolic link loop" in errors["a.jpg"]
    assert "broken symbolic link" in errors["gone.png"]
    assert "internal error" not in result.stderr


def test_non_utf8_file_names_are_stamped_and_shown_escaped(tmp_path: Path, identity_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    name = os.fsdecode(b"caf\xe9 \xff.jpg")
    (tmp_path / "in" / name).write_bytes(encode(photo("coffee", (320, 256)), "JPEG"))
    result = _run_cli(tmp_path, identity_dir)
    assert result.exit_code == 0, result.stderr
    assert "caf\\xe9 \\xff.jpg" in result.stderr
    report = json.loads(result.stdout)  # valid JSON, no lone surrogates
    (entry,) = report["files"]
    assert entry["input"].endswith("caf\\xe9 \\xff.jpg") and entry["status"] == "stamped"
    output = tmp_path / "out" / name
    assert os.fsencode(output.name) == b"caf\xe9 \xff.jpg"
    with open_store(tmp_path / "m.db") as store:
        assert verify_file(output, store=store).state is State.VALID
    again = _run_cli(tmp_path, identity_dir)  # the record is found again: skipped
    assert json.loads(again.stdout)["counts"]["skipped"] == 1


def _run_cli(tmp: Path, identity: Path, *args: str) -> Any:
    command = ["stamp", str(tmp / "in"), "-o", str(tmp / "out"), "-j", "1"]
    command += ["--identity", str(identity), "--store", str(tmp / "m.db"), "--json", *args]
    return CliRunner().invoke(cli, command)


# --- permissions: root reads everything, so these run as "nobody" ----------------


def _as_nobody(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` in a forked child without root's privileges; its result comes back as JSON."""
    if os.geteuid() != 0:
        return work()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, do the work, report, never return to pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(grp.getgrnam("nogroup").gr_gid)
            os.setuid(pwd.getpwnam("nobody").pw_uid)
            payload = json.dumps(work()).encode()
        except BaseException as exc:  # reported to the parent, which fails the test
            payload = json.dumps({"crash": f"{type(exc).__name__}: {exc}"}).encode()
        with os.fdopen(write, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(data)
    assert "crash" not in result, result
    return result


@pytest.fixture
def shared(tmp_path_factory: pytest.TempPathFactory, identity_dir: Path) -> Iterator[tuple[Path, Path]]:
    """A folder and an identity that the unprivileged user may use."""
    base = tmp_path_factory.mktemp("shared")
    identity = base / "identity"
    identity.mkdir()
    for item in identity_dir.iterdir():
        (identity / item.name).write_bytes(item.read_bytes())
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody").pw_uid
        for path in [base, *base.parents[: len(base.parents) - 1]]:
            if path.stat().st_uid == 0 and not path.stat().st_mode & 0o001:
                path.chmod(path.stat().st_mode | 0o711)  # pytest's base folders are 0700
        for path in [base, identity, *identity.iterdir()]:
            os.chown(path, nobody, -1)
    yield base, identity


def test_an_unreadable_folder_is_reported_not_skipped(shared: tuple[Path, Path]) -> None:
    base, identity = shared
    _images(base / "in", 2)
    _images(base / "in" / "locked", 1)
    (base / "in" / "locked").chmod(0o000)

    def work() -> dict[str, Any]:
        result = _run_cli(base, identity)
        return {"code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr}

    try:
        outcome = _as_nobody(work)
    finally:
        (base / "in" / "locked").chmod(0o755)
    assert outcome["code"] == 6, outcome["stderr"]
    report = json.loads(outcome["stdout"])
    assert report["counts"] == {"stamped": 2, "skipped": 0, "ignored": 0, "failed": 1}
    (failed,) = [f for f in report["files"] if f["status"] == "failed"]
    assert failed["input"].endswith("locked")
    assert "cannot read this folder (Permission denied)" in failed["error"]


def test_an_output_folder_that_cannot_be_created_is_named(shared: tuple[Path, Path]) -> None:
    base, identity = shared
    _images(base / "in", 1)
    (base / "readonly").mkdir()
    (base / "readonly").chmod(0o555)

    def work() -> dict[str, Any]:
        result = CliRunner().invoke(
            cli,
            [
                "stamp",
                str(base / "in"),
                "-o",
                str(base / "readonly" / "out"),
                "--identity",
                str(identity),
                "--store",
                str(base / "m.db"),
            ],
        )
        return {"code": result.exit_code, "stderr": result.stderr}

    outcome = _as_nobody(work)
    assert outcome["code"] == 4
    assert outcome["stderr"] == (
        f"error: {base / 'readonly' / 'out'}: cannot create the output folder (Permission denied)\n"
    )


# --- the store only serves recovery ----------------------------------------------


def test_a_corrupt_default_store_does_not_stop_verification(
    tmp_path: Path, identity_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PROVENANCE_HOME", str(home))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(encode(photo("coffee", (320, 256)), "JPEG"))
    assert _run_cli(tmp_path, identity_dir).exit_code == 0
    (home / "manifests.db").write_bytes(b"garbage " * 512)
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "out" / "a.jpg")])
    assert result.exit_code == 0, result.stderr
    assert "VALID" in result.stdout
    assert "warning:" in result.stderr and "manifests.db" in result.stderr
    assert "stripped credentials cannot be recovered" in result.stderr


# --- stamping what is already stamped --------------------------------------------


def test_restamping_a_stamped_image_keeps_its_identifier(tmp_path: Path, identity_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(encode(photo("astronaut", (384, 384)), "JPEG", quality=90))
    first = json.loads(_run_cli(tmp_path, identity_dir).stdout)["files"][0]
    again = CliRunner().invoke(
        cli,
        [
            "stamp",
            str(tmp_path / "out" / "a.jpg"),
            "-o",
            str(tmp_path / "again"),
            "--model",
            "m2",
            "--identity",
            str(identity_dir),
            "--store",
            str(tmp_path / "m.db"),
            "--json",
        ],
    )
    assert again.exit_code == 0, again.stderr
    second = json.loads(again.stdout)["files"][0]
    assert second["identifier"] == first["identifier"]
    assert second["manifest_label"] != first["manifest_label"]
    with open_store(tmp_path / "m.db") as store:
        assert store.count() == 1
        entry = store.get_by_payload(bytes.fromhex(first["identifier"]))
        assert entry is not None and entry.manifest_label == second["manifest_label"]
        result = verify_file(tmp_path / "again" / "a.jpg", store=store)
    assert result.state is State.VALID
    assert result.watermark is not None and result.watermark.matches_manifest
    assert result.active_manifest is not None
    parents = [i for i in result.active_manifest.ingredients if i.relationship == "parentOf"]
    assert [p.label for p in parents] == [first["manifest_label"]]  # the old credentials


def test_restamping_a_stripped_stamped_image_says_why_not(tmp_path: Path, identity: Any) -> None:
    with open_store(tmp_path / "m.db") as store:
        info = GenerationInfo(generator="tests")
        source = encode(photo("astronaut", (384, 384)), "PNG")
        first = stamp(source, identity, info, store=store, format="PNG")
        stripped = encode(Image.open(io.BytesIO(first.data)), "PNG")  # the pixels only
        with pytest.raises(WatermarkFailure, match=r"already carries watermark .* recovers them") as caught:
            stamp(stripped, identity, info, store=store, format="PNG")
        assert caught.value.exit_code == 4
        assert store.count() == 1


# --- re-runs with other facts, --force, --quality ----------------------------------


def test_rerun_with_other_facts_stamps_again_and_says_why(tmp_path: Path, identity_dir: Path) -> None:
    _images(tmp_path / "in", 2, size=384)
    assert json.loads(_run_cli(tmp_path, identity_dir, "--model", "m1").stdout)["counts"]["stamped"] == 2
    same = json.loads(_run_cli(tmp_path, identity_dir, "--model", "m1").stdout)
    assert same["counts"]["skipped"] == 2
    changed = _run_cli(tmp_path, identity_dir, "--model", "m2")
    report = json.loads(changed.stdout)
    assert report["counts"]["stamped"] == 2
    assert all(f["note"] == "stamped again: model was 'm1', now 'm2'" for f in report["files"])
    assert "stamped again: model was 'm1', now 'm2'" in changed.stderr
    forced = json.loads(_run_cli(tmp_path, identity_dir, "--model", "m2", "--force").stdout)
    assert forced["counts"]["stamped"] == 2
    with open_store(tmp_path / "m.db") as store:
        assert store.count() == 6  # earlier records stay: those files may be out there


def test_quality_sets_the_output_encoding(tmp_path: Path, identity_dir: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(encode(photo("astronaut", (384, 384)), "JPEG", quality=98))
    sizes = {}
    for quality in ("95", "70"):
        result = _run_cli(tmp_path, identity_dir, "--quality", quality)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["counts"]["stamped"] == 1  # quality is a fact: a change re-stamps
        sizes[quality] = (tmp_path / "out" / "a.jpg").stat().st_size
    assert sizes["70"] < sizes["95"] * 0.7
    assert CliRunner().invoke(cli, ["stamp", "x", "-o", "y", "--quality", "0"]).exit_code == 2


# --- two runs at once ------------------------------------------------------------


def _hold_output_lock(out: Path, target: Path) -> int:
    """Take the lock a run holds while it stamps ``target`` (see provenance.batch)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    offset = int.from_bytes(hashlib.sha256(os.fsencode(str(target))).digest()[:6], "big")
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset)
    return fd


def _waiting_on(path: Path) -> bool:
    inode = path.stat().st_ino
    return any("->" in line and f":{inode} " in line for line in Path("/proc/locks").read_text().splitlines())


def test_a_run_waits_for_the_output_another_run_is_stamping(tmp_path: Path, identity_dir: Path) -> None:
    (first, *_) = _images(tmp_path / "in", 3)
    target = (tmp_path / "out" / first.name).resolve()
    fd = _hold_output_lock(tmp_path / "out", target)  # "run A" is stamping img00.jpg
    try:
        run_b = _Batch(tmp_path, identity=identity_dir, jobs=1)
        _poll(lambda: _waiting_on(tmp_path / "out" / LOCK_NAME), "run B to wait for the lock")
        with open_store(tmp_path / "m.db") as store:  # run A finishes its file meanwhile
            info = generation_info({}, required=True)  # what the command line stamps with
            assert info is not None
            stamp(first, load_identity_dir(identity_dir), info,
                  store=store, output=target, title=first.name, source_name=str(first))  # fmt: skip
    finally:
        os.close(fd)  # run A releases the output
    exit_code, report, stderr = run_b.finish()
    assert _finished(exit_code, report), stderr
    assert report is not None
    statuses = {Path(f["input"]).name: f["status"] for f in report["files"]}
    assert statuses["img00.jpg"] == "skipped"  # waited for "run A", then found its record
    assert _count(report, "stamped") + _count(report, "failed") == 2
    _assert_consistent(tmp_path / "out", tmp_path / "m.db")


def test_two_runs_over_one_folder_share_the_work(tmp_path: Path, identity_dir: Path) -> None:
    _images(tmp_path / "in", 16)
    runs = [_Batch(tmp_path, identity=identity_dir, jobs=1) for _ in range(2)]
    results = [run.finish() for run in runs]
    assert all(_finished(code, report) for code, report, _ in results), [err for _, _, err in results]
    reports = [report for _, report, _ in results if report is not None]
    stamped = sum(_count(r, "stamped") for r in reports)
    # Each file stamped once: by one run, skipped by the other (or retried by
    # it when the first could not hold its identifier).
    assert sum(_count(r, s) for r in reports for s in ("stamped", "skipped", "failed")) == 32
    assert stamped == len(_records(tmp_path / "m.db")) <= 16
    assert stamped >= 16 - sum(_count(r, "failed") for r in reports)
    _assert_consistent(tmp_path / "out", tmp_path / "m.db")


def test_library_batch_raises_batch_interrupted_with_the_report(tmp_path: Path, identity_dir: Path) -> None:
    _images(tmp_path / "in", 3)
    seen = []

    def stop_after_one(outcome: Any) -> None:
        seen.append(outcome)
        if len(seen) == 1:
            raise KeyboardInterrupt

    with pytest.raises(BatchInterrupted) as caught:
        stamp_tree(
            [tmp_path / "in"], tmp_path / "out", functools.partial(load_identity_dir, identity_dir),
            GenerationInfo(generator="t"), store_path=tmp_path / "m.db", jobs=1, on_result=stop_after_one,
        )  # fmt: skip
    report = caught.value.report
    assert report.counts()["stamped"] == 1 and len(report.not_done) == 2
    assert report.interrupted_by == signal.SIGINT


def test_an_interrupt_inside_the_signing_callback_prints_no_traceback() -> None:
    # ctypes cannot propagate an exception out of a callback that native code
    # called (the C2PA signer); it would print one as "Exception ignored".
    import ctypes

    from provenance import batch

    reported: list[type[BaseException]] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int)
    previous = sys.unraisablehook
    sys.unraisablehook = batch._quiet_when_stopping(lambda u: reported.append(type(u.exc_value)))
    try:
        for interrupt in (batch._Terminated, KeyboardInterrupt, ValueError):

            def sign(exc: type[BaseException] = interrupt) -> int:
                raise exc

            callback_type(sign)()
    finally:
        sys.unraisablehook = previous
    assert reported == [ValueError]  # anything else is still reported


def test_the_fork_server_is_born_deaf_to_ctrl_c() -> None:
    # Ctrl-C early in a batch reached a fork server still importing (a
    # KeyboardInterrupt traceback, then exit 70 on EOFError in the batch):
    # multiprocessing's resource tracker, started on the way, unblocks SIGINT.
    probe = (
        "import signal\n"
        "from multiprocessing import forkserver\n"
        "from provenance.batch import _start_fork_server\n"
        "_start_fork_server()\n"
        "pid = forkserver._forkserver._forkserver_pid\n"
        "mask = next(l for l in open(f'/proc/{pid}/status') if l.startswith('SigBlk:'))\n"
        "print(int(mask.split()[1], 16) >> (signal.SIGINT - 1) & 1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1", "the fork server does not block SIGINT"
