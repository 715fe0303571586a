"""Batch stamping: mirrored folders, a bad file, resume, idempotence, shared store."""

from __future__ import annotations

import functools
import json
import multiprocessing
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from manifests import GenerationInfo
from provenance.batch import FileOutcome, plan, stamp_tree
from provenance.errors import OutputError, UsageError
from provenance.keys import load_identity_dir
from provenance.store import open_store
from provenance.verify import State, verify_file

from .conftest import encode, photo

INFO = GenerationInfo(generator="batch-tests", model="m")


def _tree(root: Path) -> Path:
    (root / "in" / "portraits").mkdir(parents=True)
    (root / "in" / "astronaut.jpg").write_bytes(encode(photo("astronaut"), "JPEG", quality=90))
    (root / "in" / "coffee.png").write_bytes(encode(photo("coffee"), "PNG"))
    (root / "in" / "portraits" / "chelsea.jpg").write_bytes(encode(photo("chelsea"), "JPEG"))
    (root / "in" / "portraits" / "rocket.webp").write_bytes(encode(photo("rocket"), "WEBP"))
    return root / "in"


def _run(root: Path, identity_dir: Path, jobs: int = 1, **kwargs):  # type: ignore[no-untyped-def]
    return stamp_tree(
        [root / "in"],
        root / "out",
        functools.partial(load_identity_dir, identity_dir),
        INFO,
        store_path=root / "m.db",
        jobs=jobs,
        **kwargs,
    )


def test_folder_is_mirrored_and_every_output_verifies(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    before = {p: p.read_bytes() for p in (tmp_path / "in").rglob("*") if p.is_file()}
    report = _run(tmp_path, identity_dir, jobs=2)
    assert report.counts() == {"stamped": 4, "skipped": 0, "ignored": 0, "failed": 0}
    outputs = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")}
    assert outputs == {
        ".provenance-stamp.lock",  # the per-output locks of concurrent runs
        "astronaut.jpg",
        "coffee.png",
        "portraits/chelsea.jpg",
        "portraits/rocket.webp",
    }
    assert {p: p.read_bytes() for p in before} == before  # inputs untouched
    with open_store(tmp_path / "m.db") as store:
        assert store.count() == 4
        for outcome in report.outcomes:
            result = verify_file(outcome.output, store=store)  # type: ignore[arg-type]
            assert result.state is State.VALID
            assert result.watermark is not None and result.watermark.matches_manifest


def test_one_bad_file_does_not_stop_the_batch(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    full = encode(photo("astronaut"), "JPEG")
    (tmp_path / "in" / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (tmp_path / "in" / "notes.jpg").write_text("not an image")
    (tmp_path / "in" / "tiny.png").write_bytes(encode(photo("astronaut", (64, 64)), "PNG"))
    report = _run(tmp_path, identity_dir)
    failed = {Path(o.input).name: o.error for o in report.failed}
    assert set(failed) == {"truncated.jpg", "notes.jpg", "tiny.png"}
    assert "truncated or corrupt" in str(failed["truncated.jpg"])
    assert "not an image" in str(failed["notes.jpg"])
    assert "at least" in str(failed["tiny.png"])
    assert report.counts()["stamped"] == 4
    assert not (tmp_path / "out" / "truncated.jpg").exists()


def test_files_that_are_not_images_are_ignored_not_failed(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    (tmp_path / "in" / "prompt.JSON").write_text("{}")
    (tmp_path / "in" / "CAPS.JPG").write_bytes(encode(photo("camera"), "JPEG"))
    report = _run(tmp_path, identity_dir)
    assert report.counts() == {"stamped": 5, "skipped": 0, "ignored": 2, "failed": 0}
    ignored = {Path(o.input).name: o.note for o in report.outcomes if o.status == "ignored"}
    assert set(ignored) == {"notes.txt", "prompt.JSON"}
    assert "not an image or audio file name" in str(ignored["notes.txt"])
    assert not (tmp_path / "out" / "notes.txt").exists()


def test_include_and_exclude_patterns(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    report = _run(tmp_path, identity_dir, include=["*.jpg", "*.webp"], exclude=["portraits/*.webp"])
    assert {Path(o.input).name for o in report.outcomes if o.status == "stamped"} == {
        "astronaut.jpg",
        "chelsea.jpg",
    }
    notes = {Path(o.input).name: o.note for o in report.outcomes if o.status == "ignored"}
    assert notes == {
        "coffee.png": "matches no --include pattern",
        "rocket.webp": "excluded by --exclude portraits/*.webp",
    }


def test_rerun_skips_and_never_records_twice(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    first = _run(tmp_path, identity_dir)
    outputs = {o.output: Path(o.output).read_bytes() for o in first.outcomes}  # type: ignore[arg-type]
    second = _run(tmp_path, identity_dir, jobs=2)
    assert second.counts() == {"stamped": 0, "skipped": 4, "ignored": 0, "failed": 0}
    assert {o.output: Path(o.output).read_bytes() for o in second.outcomes} == outputs  # type: ignore[arg-type]
    with open_store(tmp_path / "m.db") as store:
        assert store.count() == 4


def test_resume_after_an_interrupted_batch(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    seen: list[FileOutcome] = []

    def interrupt_after_two(outcome: FileOutcome) -> None:
        seen.append(outcome)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, identity_dir, on_result=interrupt_after_two)
    resumed = _run(tmp_path, identity_dir)
    assert resumed.counts() == {"stamped": 2, "skipped": 2, "ignored": 0, "failed": 0}
    with open_store(tmp_path / "m.db") as store:
        assert store.count() == 4


def test_an_output_that_was_deleted_is_stamped_again(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    _run(tmp_path, identity_dir)
    (tmp_path / "out" / "coffee.png").unlink()
    again = _run(tmp_path, identity_dir)
    assert again.counts() == {"stamped": 1, "skipped": 3, "ignored": 0, "failed": 0}
    third = _run(tmp_path, identity_dir)  # the newest record describes the file on disk
    assert third.counts() == {"stamped": 0, "skipped": 4, "ignored": 0, "failed": 0}
    with open_store(tmp_path / "m.db") as store:
        assert store.count() == 5  # the lost output's record stays: its file may be out there


def _stamp_folder(args: tuple[str, str, str, str]) -> int:
    src, out, db, identity_dir = args
    report = stamp_tree(
        [src], out, functools.partial(load_identity_dir, identity_dir), INFO, store_path=db, jobs=1
    )
    return report.counts()["stamped"]


def test_concurrent_stamping_processes_share_one_store(tmp_path: Path, identity_dir: Path) -> None:
    for name in ("a", "b"):
        _tree(tmp_path / name)
    db = str(tmp_path / "shared.db")
    jobs = [(str(tmp_path / n / "in"), str(tmp_path / n / "out"), db, str(identity_dir)) for n in "ab"]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(_stamp_folder, jobs) == [4, 4]
    with open_store(db) as store:
        assert store.count() == 8


def test_outputs_cannot_escape_the_output_folder(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "portraits").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="outside"):
        plan([tmp_path / "in"], tmp_path / "out")


def test_output_folder_inside_the_input_is_not_restamped(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    (src / "stamped").mkdir()
    (src / "stamped" / "old.jpg").write_bytes(b"x")
    pairs = plan([src], src / "stamped")
    assert all("stamped" not in p.relative_to(src).parts for p, _ in pairs)


def test_cli_batch_json_report_and_exit_code(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    result = CliRunner().invoke(
        cli,
        [
            "stamp",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--identity",
            str(identity_dir),
            "--store",
            str(tmp_path / "m.db"),
            "--jobs",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 6, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["failed"] == 1, result.stderr
    assert report["counts"] == {"stamped": 4, "skipped": 0, "ignored": 0, "failed": 1}
    assert "failed: " in result.stderr and "4 stamped" in result.stderr
    bad = next(f for f in report["files"] if f["status"] == "failed")
    assert bad["input"].endswith("broken.png") and bad["error"]


def test_output_folder_equal_to_the_input_folder_is_refused(tmp_path: Path, identity_dir: Path) -> None:
    src = _tree(tmp_path)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    with pytest.raises(UsageError, match="overwrite an input"):
        stamp_tree(
            [src],
            src,
            functools.partial(load_identity_dir, identity_dir),
            INFO,
            store_path=tmp_path / "m.db",
            jobs=1,
        )
    assert {p: p.read_bytes() for p in before} == before


def test_a_bad_store_is_one_clear_error_even_in_parallel(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    result = CliRunner().invoke(
        cli,
        [
            "stamp",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--identity",
            str(identity_dir),
            "--store",
            str(tmp_path / "junk.db"),
            "--jobs",
            "2",
        ],
    )
    assert result.exit_code == 8
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr
