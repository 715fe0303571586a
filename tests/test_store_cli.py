"""``provenance store``: a table with headers, the store's exit code, export of everything in one pass."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import c2pa
import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from manifests import GenerationInfo
from provenance.errors import EntryNotFoundError, ExitCode, OutputError
from provenance.keys import Identity
from provenance.sign import sign_image
from provenance.store import ManifestStore, StoreEntry, export_manifests, open_store

N = 12


@pytest.fixture(scope="module")
def manifests(identity: Identity) -> list[bytes]:
    """Real signed manifest stores, as ``stamp`` records them."""
    info = GenerationInfo(generator="tests", model="store-model")
    out = []
    for i in range(N):
        signed = sign_image(Image.new("RGB", (32, 32), (i * 20, 80, 160)), identity, info, thumbnail=False)
        out.append(signed.manifest_store)
    return out


def _entry(i: int, manifest: bytes) -> StoreEntry:
    return StoreEntry(
        payload=(0xA0 + i).to_bytes(8, "big"),
        manifest_label=f"urn:c2pa:test-{i}",
        manifest_store=manifest,
        mime="image/png",
        model="store-model",
        title=f"picture {i}.png" if i % 2 else None,
        created_at=f"2026-01-01T00:00:{i:02d}+00:00",
    )


@pytest.fixture
def db(tmp_path: Path, manifests: list[bytes]) -> Path:
    path = tmp_path / "manifests.db"
    with open_store(path) as store:
        for i, manifest in enumerate(manifests):
            store.record(_entry(i, manifest))
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_show_unknown_exits_with_the_store_code(runner: CliRunner, db: Path) -> None:
    result = runner.invoke(cli, ["store", "show", "ffffffffffffffff", "--store", str(db)])
    assert result.exit_code == ExitCode.STORE_ERROR == 8
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: nothing in the store for 'ffffffffffffffff'")
    result = runner.invoke(cli, ["store", "export", "urn:c2pa:nope", "-o", "x.c2pa", "--store", str(db)])
    assert result.exit_code == 8 and "nothing in the store" in result.stderr


def test_show_by_identifier_and_by_label(runner: CliRunner, db: Path) -> None:
    ident = (0xA3).to_bytes(8, "big").hex()
    for ref in (ident, "urn:c2pa:test-3"):
        result = runner.invoke(cli, ["store", "show", ref, "--store", str(db)])
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["identifier"] == ident


def test_list_has_column_headers_and_json(runner: CliRunner, db: Path) -> None:
    result = runner.invoke(cli, ["store", "list", "--store", str(db), "--limit", "5"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["IDENTIFIER", "CREATED", "FORMAT", "MODEL", "TITLE", "MANIFEST", "LABEL"]
    assert len(lines) == 6
    # the columns line up under their headers
    label_column = lines[0].index("MANIFEST LABEL")
    assert all(line[label_column:].startswith("urn:c2pa:test-") for line in lines[1:])
    assert lines[1].startswith((0xA0 + N - 1).to_bytes(8, "big").hex())  # newest first
    assert result.stderr == f"5 of {N} entries\n"
    doc = json.loads(runner.invoke(cli, ["store", "list", "--store", str(db), "--json"]).stdout)
    assert doc["count"] == N and len(doc["entries"]) == N
    assert {"identifier", "manifest_label", "model", "created_at"} <= set(doc["entries"][0])


def test_list_of_an_empty_store(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["store", "list", "--store", str(tmp_path / "empty.db")])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no entries" in result.stderr


def test_export_all_writes_every_manifest_once(
    runner: CliRunner, db: Path, tmp_path: Path, manifests: list[bytes]
) -> None:
    out = tmp_path / "exported"
    result = runner.invoke(cli, ["store", "export", "--all", str(out), "--store", str(db), "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"exported {N} manifests to {out}\n"
    listing = json.loads(result.stdout)["exported"]
    assert len(listing) == N
    files = sorted(out.iterdir())
    assert [f.name for f in files] == sorted(f"{0xA0 + i:016x}.c2pa" for i in range(N))
    for item in listing:
        path = Path(item["path"])
        i = int(item["identifier"], 16) - 0xA0
        assert path.read_bytes() == manifests[i]
        # a .c2pa file the reference implementation reads back as that manifest
        reader = c2pa.Reader("application/c2pa", io.BytesIO(path.read_bytes()))
        assert json.loads(reader.json())["active_manifest"].startswith("urn:c2pa:")
    # a re-run rewrites the same names, leaves no temporary files
    again = runner.invoke(cli, ["store", "export", "--all", str(out), "--store", str(db)])
    assert again.exit_code == 0 and again.stdout == ""
    assert sorted(out.iterdir()) == files


def test_export_all_is_one_query(db: Path, tmp_path: Path) -> None:
    statements: list[str] = []
    with open_store(db) as store:
        store._db.set_trace_callback(statements.append)
        report = export_manifests(store, tmp_path / "one-pass")
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(report.written) == N
    assert len(selects) == 1, selects


def test_export_usage_and_output_errors(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    neither = runner.invoke(cli, ["store", "export", "--store", str(db)])
    assert neither.exit_code == 2 and "--all FOLDER" in neither.stderr
    both = runner.invoke(
        cli, ["store", "export", "urn:c2pa:test-1", "--all", str(tmp_path), "--store", str(db)]
    )
    assert both.exit_code == 2
    no_output = runner.invoke(cli, ["store", "export", "urn:c2pa:test-1", "--store", str(db)])
    assert no_output.exit_code == 2 and "-o FILE" in no_output.stderr
    (tmp_path / "a-file").write_text("x")
    onto_file = runner.invoke(cli, ["store", "export", "--all", str(tmp_path / "a-file"), "--store", str(db)])
    assert onto_file.exit_code == ExitCode.FILE_ERROR
    assert onto_file.stderr.startswith("error: ") and "not a folder" in onto_file.stderr


class _DictStore(ManifestStore):
    """The smallest possible backend: only the abstract methods, to exercise the defaults."""

    def __init__(self) -> None:
        self.rows: list[StoreEntry] = []
        self.list_calls = 0

    def record(self, entry: StoreEntry) -> bool:
        self.rows.append(entry)
        return True

    def get_by_payload(self, payload: bytes) -> StoreEntry | None:
        return next((e for e in self.rows if e.payload == payload), None)

    def get_by_label(self, label: str) -> StoreEntry | None:
        return next((e for e in self.rows if e.manifest_label == label), None)

    def find_stamped(self, source_sha256: str, output_path: str) -> StoreEntry | None:
        return None

    def list(self, limit: int = 100, offset: int = 0) -> list[StoreEntry]:
        self.list_calls += 1
        return list(reversed(self.rows))[offset : offset + limit]

    def count(self) -> int:
        return len(self.rows)


@pytest.mark.parametrize("count", [0, 1, 3, 7, 9])
def test_default_iteration_and_export_work_on_any_backend(
    count: int, tmp_path: Path, manifests: list[bytes]
) -> None:
    store = _DictStore()
    for i in range(count):
        store.record(_entry(i, manifests[i]))
    entries: Iterator[StoreEntry] = store.iter_entries(batch_size=3)
    assert [e.manifest_label for e in entries] == [f"urn:c2pa:test-{i}" for i in range(count)]
    assert store.list_calls <= count // 3 + 1  # pages, not one call per entry
    report = export_manifests(store, tmp_path / "out")
    assert len(report.written) == count
    if count:
        assert store.find("urn:c2pa:test-0").payload_hex == f"{0xA0:016x}"
        assert store.find(f"{0xA0:016x}").manifest_label == "urn:c2pa:test-0"
    with pytest.raises(EntryNotFoundError):
        store.find("0123456789abcdef")


def test_export_refuses_a_folder_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        export_manifests(_DictStore(), tmp_path / "file" / "below")
