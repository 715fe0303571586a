"""Batch stamping on a Dask cluster (a LocalCluster of worker processes) into a shared PostgreSQL store."""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster

from cli.main import cli
from manifests import GenerationInfo
from provenance._internal import dask_runner
from provenance.batch import FileOutcome, stamp_tree
from provenance.errors import UsageError
from provenance.keys import load_identity_dir
from provenance.store import open_store
from provenance.verify import State, verify_file

from .conftest import encode, photo

INFO = GenerationInfo(generator="dask-tests", model="m")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as local:
        yield local


def _tree(root: Path) -> Path:
    (root / "in" / "sub").mkdir(parents=True)
    (root / "in" / "astronaut.jpg").write_bytes(encode(photo("astronaut", (384, 384)), "JPEG", quality=90))
    (root / "in" / "coffee.png").write_bytes(encode(photo("coffee", (400, 300)), "PNG"))
    (root / "in" / "sub" / "chelsea.jpg").write_bytes(encode(photo("chelsea", (400, 300)), "JPEG"))
    (root / "in" / "sub" / "rocket.webp").write_bytes(encode(photo("rocket", (400, 300)), "WEBP"))
    return root / "in"


def _run(root: Path, identity_dir: Path, store: str, scheduler: object, **kwargs):  # type: ignore[no-untyped-def]
    return stamp_tree(
        [root / "in"],
        root / "out",
        functools.partial(load_identity_dir, identity_dir),
        INFO,
        store_path=store,
        scheduler=scheduler,
        **kwargs,
    )


def test_workers_stamp_into_the_shared_store_and_a_rerun_resumes(
    tmp_path: Path, identity_dir: Path, postgres_url: str, cluster: LocalCluster
) -> None:
    _tree(tmp_path)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    seen: list[FileOutcome] = []
    report = _run(tmp_path, identity_dir, postgres_url, cluster.scheduler_address, on_result=seen.append)
    assert report.counts() == {"stamped": 4, "skipped": 0, "failed": 1, "ignored": 0}
    assert len(seen) == 5  # each outcome reported as it came back
    assert [Path(o.input).name for o in report.outcomes] == [
        "astronaut.jpg",
        "broken.png",
        "coffee.png",
        "chelsea.jpg",
        "rocket.webp",
    ]  # in plan order, whatever order the workers finished in
    broken = report.failed[0]
    assert broken.input.endswith("broken.png") and "not an image" in str(broken.error)
    # The work ran in the worker processes, not here.
    with Client(cluster.scheduler_address) as client:
        initialised = client.run(lambda: dict(dask_runner._ACTIVE))
    assert any(state for state in initialised.values())
    assert dask_runner._ACTIVE == {}
    with open_store(postgres_url) as store:
        assert store.count() == 4
        for outcome in report.outcomes:
            if outcome.status == "stamped":
                result = verify_file(outcome.output, store=store)  # type: ignore[arg-type]
                assert result.state is State.VALID
                assert result.watermark is not None and result.watermark.payload == outcome.identifier
    again = _run(tmp_path, identity_dir, postgres_url, cluster.scheduler_address)
    assert again.counts() == {"stamped": 0, "skipped": 4, "failed": 1, "ignored": 0}
    with open_store(postgres_url) as store:
        assert store.count() == 4  # never recorded twice


def test_an_interrupted_cluster_batch_resumes_without_duplicates(
    tmp_path: Path, identity_dir: Path, postgres_url: str, cluster: LocalCluster
) -> None:
    _tree(tmp_path)

    def interrupt(outcome: FileOutcome) -> None:
        raise KeyboardInterrupt

    with Client(cluster.scheduler_address, set_as_default=False) as client:
        with pytest.raises(KeyboardInterrupt):
            _run(tmp_path, identity_dir, postgres_url, client, on_result=interrupt)
        resumed = _run(tmp_path, identity_dir, postgres_url, client)
    counts = resumed.counts()
    assert counts["failed"] == 0 and counts["skipped"] >= 1 and counts["stamped"] + counts["skipped"] == 4
    with open_store(postgres_url) as store:
        assert store.count() == 4


def test_cli_stamp_on_a_scheduler(
    tmp_path: Path, identity_dir: Path, postgres_url: str, cluster: LocalCluster
) -> None:
    _tree(tmp_path)
    args = ["stamp", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--identity", str(identity_dir)]
    args += ["--store", postgres_url, "--scheduler", cluster.scheduler_address, "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counts"] == {"stamped": 4, "skipped": 0, "failed": 0, "ignored": 0}
    assert "4 stamped" in result.stderr and postgres_url in result.stderr


def test_a_scheduler_needs_a_shared_postgresql_store(tmp_path: Path, identity_dir: Path) -> None:
    _tree(tmp_path)
    args = ["stamp", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--identity", str(identity_dir)]
    result = CliRunner().invoke(
        cli, [*args, "--store", str(tmp_path / "m.db"), "--scheduler", "tcp://x:8786"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: stamping on a Dask cluster needs a PostgreSQL store")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "out").exists()


def test_an_unreachable_scheduler_is_one_clear_error(
    tmp_path: Path, identity_dir: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path)
    monkeypatch.setattr(dask_runner, "_CONNECT_TIMEOUT", "1s")
    with pytest.raises(UsageError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1"):
        _run(tmp_path, identity_dir, postgres_url, "tcp://127.0.0.1:1")


def test_missing_dask_is_a_clear_error(
    tmp_path: Path, identity_dir: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(UsageError, match=r"pip install 'provenance-kit\[dask\]'"):
        _run(tmp_path, identity_dir, postgres_url, "tcp://127.0.0.1:8786")


def test_two_batches_of_the_same_files_at_once_stamp_each_file_once(
    tmp_path: Path, identity_dir: Path, postgres_url: str, cluster: LocalCluster
) -> None:
    # Two clients stamping the same folder into the same store at the same time
    # (or a resumed batch while tasks of the interrupted one still run): every
    # output is stamped and recorded once, the other batch skips it.
    _tree(tmp_path)
    reports: list[Any] = []

    def batch() -> None:
        reports.append(_run(tmp_path, identity_dir, postgres_url, cluster.scheduler_address))

    threads = [threading.Thread(target=batch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(reports) == 2
    assert sum(r.counts()["stamped"] for r in reports) == 4
    assert sum(r.counts()["skipped"] for r in reports) == 4
    with open_store(postgres_url) as store:
        assert store.count() == 4
