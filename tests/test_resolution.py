"""The Soft Binding Resolution service and remote recovery, through real HTTP on loopback."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from click.testing import CliRunner
from openapi_spec_validator import validate
from PIL import Image, ImageFilter

import watermark
import watermark.audio
from cli.main import cli
from manifests import GenerationInfo
from provenance._internal import likeness, pdq
from provenance.keys import Identity
from provenance.stamp import StampResult, stamp
from provenance.store import ManifestStore, SQLiteManifestStore, StoreEntry, open_store
from tests._service import Service, running_service
from tests.conftest import encode, photo

INFO = GenerationInfo(generator="test-gen", model="test-model")
PDQ = pdq.ALGORITHM
WM = watermark.ALGORITHM


@pytest.fixture(scope="module")
def home_a(
    tmp_path_factory: pytest.TempPathFactory, identity: Identity
) -> tuple[Path, dict[str, StampResult]]:
    home = tmp_path_factory.mktemp("home-a")
    with open_store(home / "manifests.db") as store:
        stamped = {
            name: stamp(encode(photo(name), "JPEG", quality=92), identity, INFO, store=store)
            for name in ("coffee", "camera")
        }
    return home, stamped


@pytest.fixture(scope="module")
def service(home_a: tuple[Path, dict[str, StampResult]]) -> Iterator[Service]:
    home, _ = home_a
    with running_service(["--store", str(home / "manifests.db"), "--max-body", "1"]) as running:
        yield running


def degraded(data: bytes) -> bytes:
    """Blur sigma 3.5, downscale to 0.4x, crop 2% from each edge, JPEG 35."""
    image = Image.open(__import__("io").BytesIO(data)).convert("RGB")
    small = image.filter(ImageFilter.GaussianBlur(3.5)).resize(
        (int(image.width * 0.4), int(image.height * 0.4)), Image.Resampling.BILINEAR
    )
    dx, dy = int(small.width * 0.02), int(small.height * 0.02)
    return encode(small.crop((dx, dy, small.width - dx, small.height - dy)), "JPEG", quality=35)


def stripped(data: bytes) -> bytes:
    """The pixels only, re-encoded: what a platform that drops metadata serves."""
    return encode(Image.open(__import__("io").BytesIO(data)).convert("RGB"), "JPEG", quality=85)


def test_supported_algorithms_and_openapi(service: Service) -> None:
    assert service.json("GET", "/services/supportedAlgorithms") == (
        200,
        {"watermarks": [*({"alg": a} for a in watermark.ALGORITHMS), {"alg": watermark.audio.ALGORITHM}],
         "fingerprints": [{"alg": PDQ}]},
    )
    status, document = service.json("GET", "/openapi.json")
    assert status == 200
    validate(document)  # a valid OpenAPI 3.0 document
    paths = document["paths"]
    assert set(paths["/matches/byBinding"]) == {"get", "post"}
    assert paths["/matches/byContent"]["post"]["operationId"] == "uploadFile"
    assert "application/c2pa" in paths["/manifests/{manifestId}"]["get"]["responses"]["200"]["content"]
    assert "post" in paths["/manifests"]
    result = document["components"]["schemas"]["c2pa.softBindingQueryResult"]
    assert result["properties"]["matches"]["items"]["required"] == ["manifestId"]


def test_by_binding_watermark_and_fingerprint(
    service: Service, home_a: tuple[Path, dict[str, StampResult]]
) -> None:
    _, stamped = home_a
    coffee = stamped["coffee"]
    expected = {"matches": [{"manifestId": coffee.manifest_label}]}
    value = quote(coffee.soft_binding_value)
    assert service.json("GET", f"/matches/byBinding?alg={WM}&value={value}") == (200, expected)
    assert service.json("POST", "/matches/byBinding", {"alg": WM, "value": coffee.soft_binding_value}) == (
        200,
        expected,
    )
    unknown = watermark.soft_binding_value(bytes(8))
    assert service.json("POST", "/matches/byBinding", {"alg": WM, "value": unknown}) == (200, {"matches": []})
    fingerprint = pdq.fingerprint(Image.open(__import__("io").BytesIO(coffee.data)))
    status, answer = service.json(
        "POST",
        "/matches/byBinding?maxResults=1",
        {"alg": PDQ, "value": base64.b64encode(fingerprint).decode()},
    )
    assert status == 200
    assert [m["manifestId"] for m in answer["matches"]] == [coffee.manifest_label]
    assert answer["matches"][0]["similarityScore"] >= 90


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", f"/matches/byBinding?alg={WM}&value=not*base64", None, 400),
        ("GET", f"/matches/byBinding?alg={WM}&value=AAAA", None, 400),
        ("GET", "/matches/byBinding?alg=com.example.unknown&value=AAAAAAAAAAA=", None, 400),
        ("GET", f"/matches/byBinding?alg={WM}", None, 400),
        ("GET", f"/matches/byBinding?alg={WM}&value=AAAAAAAAAAA=&maxResults=0", None, 400),
        ("POST", "/matches/byBinding", {"alg": PDQ, "value": "AAAA"}, 400),
        ("POST", "/matches/byBinding", {"alg": 3}, 400),
        ("POST", "/matches/byBinding", [], 400),
        ("GET", "/manifests/urn:c2pa:00000000-0000-0000-0000-000000000000", None, 404),
        ("GET", "/manifests/not-an-identifier", None, 400),
        ("GET", "/references/urn:c2pa:00000000-0000-0000-0000-000000000000", None, 404),
        ("POST", "/manifests", {"manifest": "AAAA"}, 403),  # no write tokens configured
    ],
)
def test_bad_requests_get_json_errors(
    service: Service, method: str, path: str, body: object, status: int
) -> None:
    got, error = service.json(method, path, body)
    assert got == status
    assert error["error"]["status"] == status and error["error"]["message"]
    assert service.json("GET", "/healthz")[0] == 200


def test_by_content_reads_the_watermark_then_the_fingerprint(
    service: Service, home_a: tuple[Path, dict[str, StampResult]]
) -> None:
    _, stamped = home_a
    coffee = stamped["coffee"]
    status, _, body = service.request(
        "POST", "/matches/byContent", stripped(coffee.data), {"Content-Type": "image/jpeg"}
    )
    assert status == 200
    assert json.loads(body) == {"matches": [{"manifestId": coffee.manifest_label, "similarityScore": 100}]}
    # The fingerprint alone (alg=PDQ skips the watermark) finds the degraded copy...
    for name, result in stamped.items():
        status, _, body = service.request(
            "POST", f"/matches/byContent?alg={PDQ}", degraded(result.data), {"Content-Type": "image/jpeg"}
        )
        assert status == 200, name
        matches = json.loads(body)["matches"]
        assert [m["manifestId"] for m in matches] == [result.manifest_label], name
        assert 80 <= matches[0]["similarityScore"] <= 100
    # ...and never an unrelated picture.
    for name in ("astronaut", "chelsea", "rocket"):
        status, _, body = service.request(
            "POST", "/matches/byContent", encode(photo(name), "PNG"), {"Content-Type": "image/png"}
        )
        assert (status, json.loads(body)) == (200, {"matches": []}), name


def cut(data: bytes, fraction: float, edge: str) -> bytes:
    """Cut ``fraction`` off one edge after blur 3.5 and a 0.4x downscale, then JPEG 35."""
    image = Image.open(__import__("io").BytesIO(data)).convert("RGB")
    small = image.filter(ImageFilter.GaussianBlur(3.5)).resize(
        (int(image.width * 0.4), int(image.height * 0.4)), Image.Resampling.BILINEAR
    )
    w, h = small.size
    boxes = {"left": (int(w * fraction), 0, w, h), "bottom": (0, 0, w, h - int(h * fraction))}
    return encode(small.crop(boxes[edge]), "JPEG", quality=35)


@pytest.mark.parametrize(("fraction", "edge"), [(0.10, "left"), (0.10, "bottom"), (0.05, "left")])
def test_by_content_finds_copies_cut_along_one_edge(
    service: Service, home_a: tuple[Path, dict[str, StampResult]], fraction: float, edge: str
) -> None:
    _, stamped = home_a
    result = stamped["coffee"]
    query = cut(result.data, fraction, edge)
    stored = pdq.fingerprint(Image.open(__import__("io").BytesIO(result.data)))
    seen = Image.open(__import__("io").BytesIO(query))
    if fraction == 0.10:
        # The case the crop guesses exist for: the plain PDQ hash is out of reach...
        assert pdq.distance(stored, pdq.fingerprint(seen)) > pdq.MATCH_DISTANCE
    # ...one of the guesses is close (the edge mirrored back where it was cut)...
    assert min(pdq.distance(stored, h) for h in pdq.uncropped_fingerprints(seen)) <= pdq.MATCH_DISTANCE
    # ...and the service finds it, confirmed by the likeness check.
    status, _, body = service.request(
        "POST", f"/matches/byContent?alg={PDQ}", query, {"Content-Type": "image/jpeg"}
    )
    assert status == 200
    assert [m["manifestId"] for m in json.loads(body)["matches"]] == [result.manifest_label]


@pytest.fixture(scope="module")
def textured(
    tmp_path_factory: pytest.TempPathFactory, identity: Identity
) -> Iterator[tuple[Service, Path, StampResult]]:
    """A store holding a stamped brick wall, and a service over it."""
    home = tmp_path_factory.mktemp("home-brick")
    with open_store(home / "manifests.db") as store:
        result = stamp(encode(photo("brick"), "JPEG", quality=92), identity, INFO, store=store)
    with running_service(["--store", str(home / "manifests.db")]) as running:
        yield running, home / "manifests.db", result


def test_by_content_finds_a_cropped_texture_by_its_window_hash(
    textured: tuple[Service, Path, StampResult],
) -> None:
    service, location, result = textured
    query = degraded(result.data)  # blur 3.5, 0.4x, 2% off every edge, JPEG 35
    seen = Image.open(__import__("io").BytesIO(query))
    with open_store(location) as store:
        entry = store.get_by_payload(result.payload)
    assert entry is not None and entry.pdq_hash is not None and entry.pdq_window is not None
    # The frame hash of a fine texture is out of reach, with or without the one-edge guesses...
    frame = [pdq.fingerprint(seen), *pdq.uncropped_fingerprints(seen)]
    assert min(pdq.distance(entry.pdq_hash, h) for h in frame) > pdq.MATCH_DISTANCE
    # ...the window recorded at stamping is found inside the copy...
    assert min(pdq.distance(entry.pdq_window, h) for h in pdq.window_fingerprints(seen)) <= pdq.MATCH_DISTANCE
    # ...and the service answers it, confirmed by the likeness check (alg=PDQ: no watermark).
    status, _, body = service.request(
        "POST", f"/matches/byContent?alg={PDQ}", query, {"Content-Type": "image/jpeg"}
    )
    assert status == 200
    assert [m["manifestId"] for m in json.loads(body)["matches"]] == [result.manifest_label]


def test_a_near_window_hash_alone_never_matches(textured: tuple[Service, Path, StampResult]) -> None:
    service, location, result = textured
    other = photo("grass")  # another texture, unrelated to the brick wall
    query = encode(other, "JPEG", quality=80)
    seen = Image.open(__import__("io").BytesIO(query))
    far = bytes(b ^ 0xFF for b in pdq.fingerprint(seen))  # the frame hash cannot find these entries
    with open_store(location) as store:
        brick = store.get_by_payload(result.payload)
        assert brick is not None
        # An entry whose window hash is the query's own, but whose picture is the brick wall.
        store.record(
            StoreEntry(
                payload=(7001).to_bytes(8, "big"), manifest_label="urn:c2pa:look-alike", manifest_store=b"m",
                mime="application/c2pa", fingerprint_image=brick.fingerprint_image, pdq_hash=far,
                pdq_window=pdq.window_fingerprint(seen),
            )
        )
    status, _, body = service.request(
        "POST", f"/matches/byContent?alg={PDQ}", query, {"Content-Type": "image/jpeg"}
    )
    assert (status, json.loads(body)) == (200, {"matches": []})
    # The same window hash with the grass's own reference is found: the search did reach it.
    with open_store(location) as store:
        store.record(
            StoreEntry(
                payload=(7002).to_bytes(8, "big"), manifest_label="urn:c2pa:the-grass", manifest_store=b"m",
                mime="application/c2pa", fingerprint_image=likeness.reference(other), pdq_hash=far,
                pdq_window=pdq.window_fingerprint(seen),
            )
        )
    status, _, body = service.request(
        "POST", f"/matches/byContent?alg={PDQ}", query, {"Content-Type": "image/jpeg"}
    )
    assert [m["manifestId"] for m in json.loads(body)["matches"]] == ["urn:c2pa:the-grass"]


def test_by_content_errors(service: Service, home_a: tuple[Path, dict[str, StampResult]]) -> None:
    _, stamped = home_a
    jpeg = stamped["coffee"].data
    cases = [
        (jpeg[: len(jpeg) // 2], "image/jpeg", 400),  # truncated
        (b"plain text, not a picture", "text/plain", 415),
        (b"\x00\x01 not an image at all", "image/png", 415),
        (b"", "image/png", 400),
    ]
    for body, kind, status in cases:
        got, _, answer = service.request("POST", "/matches/byContent", body, {"Content-Type": kind})
        assert got == status, (kind, answer)
        assert json.loads(answer)["error"]["status"] == status
    got, _, _ = service.request(
        "POST", f"/matches/byContent?hintAlg={WM}", jpeg, {"Content-Type": "image/jpeg"}
    )
    assert got == 400
    # --max-body 1 (MiB): refused from the announced length, before the body is read.
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /matches/byContent HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Content-Length: 50000000\r\n\r\n" + b"\0" * 1024
        )
        reply = conn.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413")
    assert service.json("GET", "/healthz")[0] == 200


def test_manifest_and_reference_fetch(service: Service, home_a: tuple[Path, dict[str, StampResult]]) -> None:
    home, stamped = home_a
    label = stamped["camera"].manifest_label
    with open_store(home / "manifests.db") as store:
        entry = store.get_by_label(label)
    assert entry is not None
    for query in ("", "?returnActiveManifest=true", "?returnActiveManifest=false"):
        status, headers, body = service.request("GET", f"/manifests/{label}{query}")
        assert status == 200
        assert headers["content-type"] == "application/c2pa"
        assert headers["x-c2pa-manifest-scope"] == "store"  # also for returnActiveManifest=true
        assert body == entry.manifest_store
    assert service.request("GET", f"/manifests/{label}?returnActiveManifest=perhaps")[0] == 400
    status, headers, body = service.request("GET", f"/references/{label}")
    assert (status, headers["content-type"], body) == (200, "image/png", entry.fingerprint_image)


def test_tokens_scopes_and_registration(
    tmp_path: Path, identity: Identity, home_a: tuple[Path, dict[str, StampResult]]
) -> None:
    # A second stamping host records in its own store, then registers with the service.
    with open_store(tmp_path / "other.db") as other:
        result = stamp(encode(photo("chelsea"), "JPEG", quality=92), identity, INFO, store=other)
        entry = other.get_by_label(result.manifest_label)
    assert entry is not None
    env = {"PROVENANCE_READ_TOKENS": "read-one, read-two", "PROVENANCE_WRITE_TOKENS": "write-one"}
    with running_service(["--store", str(tmp_path / "served.db")], env=env) as service:
        query = {"alg": WM, "value": result.soft_binding_value}
        status, headers, _ = service.request("POST", "/matches/byBinding", json.dumps(query).encode())
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        bad = {"Authorization": "Bearer guessed"}
        assert service.json("POST", "/matches/byBinding", query, headers=bad)[0] == 401
        read = {"Authorization": "Bearer read-two"}
        assert service.json("POST", "/matches/byBinding", query, headers=read) == (200, {"matches": []})
        # supportedAlgorithms stays public, as the API says.
        assert service.json("GET", "/services/supportedAlgorithms")[0] == 200
        registration = {
            "manifest": base64.b64encode(entry.manifest_store).decode(),
            "asset": base64.b64encode(result.data).decode(),
        }
        assert service.json("POST", "/manifests", registration, headers=read)[0] == 403
        write = {"Authorization": "Bearer write-one"}
        status, answer = service.json("POST", "/manifests", registration, headers=write)
        assert status == 201, answer
        assert answer["manifestId"] == result.manifest_label
        assert [b["alg"] for b in answer["softBindings"]] == [WM, PDQ]
        with open_store(tmp_path / "served.db") as served:
            registered = served.get_by_payload(result.payload)
        # The registered asset gets the crop-tolerant window hash too, as a local stamp does.
        assert registered is not None and registered.pdq_window and entry.pdq_window
        assert pdq.distance(registered.pdq_window, entry.pdq_window) <= 8
        assert service.json("POST", "/manifests", registration, headers=write)[0] == 409
        assert service.json("POST", "/matches/byBinding", query, headers=read) == (
            200,
            {"matches": [{"manifestId": result.manifest_label}]},
        )
        status, _, body = service.request(
            "POST",
            f"/matches/byContent?alg={PDQ}",
            degraded(result.data),
            {"Content-Type": "image/jpeg", **read},
        )
        assert status == 200 and json.loads(body)["matches"][0]["manifestId"] == result.manifest_label
        # The CLI way: `provenance store push`, the token from the environment.
        pushed = tmp_path / "rocket.jpg"
        with open_store(tmp_path / "other.db") as other:
            second = stamp(
                encode(photo("rocket"), "JPEG", quality=92), identity, INFO, store=other, output=pushed
            )
        runner = CliRunner()
        args = [
            "store",
            "push",
            second.identifier,
            "--to",
            service.url,
            "--store",
            str(tmp_path / "other.db"),
        ]
        refused = runner.invoke(cli, args)
        assert refused.exit_code == 2 and "PROVENANCE_TOKEN" in refused.stderr
        done = runner.invoke(cli, args, env={"PROVENANCE_TOKEN": "write-one"})
        assert done.exit_code == 0, done.stderr
        assert json.loads(done.stdout)["manifestId"] == second.manifest_label
        again = runner.invoke(cli, args, env={"PROVENANCE_TOKEN": "write-one"})
        assert again.exit_code == 8 and "409" in again.stderr and "Traceback" not in again.stderr
        # verify against a service that checks reads: the token comes from the environment.
        copy = tmp_path / "copy.jpg"
        copy.write_bytes(stripped(second.data))
        verify_args = ["verify", str(copy), "--json", "--resolver", service.url]
        anonymous = runner.invoke(cli, verify_args)
        assert anonymous.exit_code == 3
        assert any("401" in w for w in json.loads(anonymous.stdout)["warnings"])
        allowed = runner.invoke(cli, verify_args, env={"PROVENANCE_RESOLVER_TOKEN": "read-one"})
        assert allowed.exit_code == 0, allowed.stdout
        assert json.loads(allowed.stdout)["recovered_from"] == service.url
        garbage = {"manifest": base64.b64encode(b"not a manifest").decode()}
        assert service.json("POST", "/manifests", garbage, headers=write)[0] == 400
        # The asset must carry the watermark the manifest declares.
        _, stamped = home_a
        wrong = {**registration, "asset": base64.b64encode(stamped["coffee"].data).decode()}
        assert service.json("POST", "/manifests", wrong, headers=write)[0] in (400, 409)


def test_verify_recovers_from_another_homes_service(
    service: Service,
    home_a: tuple[Path, dict[str, StampResult]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, stamped = home_a
    home_b = tmp_path / "home-b"
    home_b.mkdir()
    monkeypatch.setenv("PROVENANCE_HOME", str(home_b))
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(stripped(stamped["coffee"].data))
    runner = CliRunner()
    offline = runner.invoke(cli, ["verify", str(copy), "--json"])
    assert offline.exit_code == 3, offline.output
    assert json.loads(offline.stdout)["recovered_from"] is None
    online = runner.invoke(cli, ["verify", str(copy), "--json", "--resolver", service.url])
    assert online.exit_code == 0, online.stderr
    report = json.loads(online.stdout)
    assert report["recovered"] is True and report["recovered_from"] == service.url
    assert report["state"] == "valid"
    assert report["active_manifest"]["label"] == stamped["coffee"].manifest_label
    assert report["fingerprint_similarity"] >= 0.8
    text = runner.invoke(cli, ["verify", str(copy), "--resolver", service.url])
    assert text.exit_code == 0 and f"RECOVERED FROM {service.url}" in text.stdout
    # A copy whose watermark is gone is found by its fingerprint (configured resolver this time).
    (home_b / "config.toml").write_text(f'resolvers = ["{service.url}"]\n')
    worn = tmp_path / "worn.jpg"
    worn.write_bytes(degraded(stamped["camera"].data))
    result = runner.invoke(cli, ["verify", str(worn), "--json"])
    report = json.loads(result.stdout)
    assert report["recovered_from"] == service.url, report["summary"]
    assert report["watermark"]["detected"] is False  # found by the fingerprint, confirmed by likeness
    assert "fingerprint" in report["summary"] and report["fingerprint_similarity"] >= 0.8
    assert report["active_manifest"]["label"] == stamped["camera"].manifest_label
    assert result.exit_code == 0


def test_the_verify_page_asks_the_servers_resolvers(
    service: Service, home_a: tuple[Path, dict[str, StampResult]], tmp_path: Path
) -> None:
    # A newsroom's own checker, with an empty store, started with --resolver: the page
    # recovers what the CLI recovers, from the same service.
    _, stamped = home_a
    copy = stripped(stamped["coffee"].data)
    args = ["--store", str(tmp_path / "newsroom.db")]
    with running_service(args) as offline:
        status, answer = offline.json("POST", "/api/verify?name=copy.jpg", raw=copy)
    assert status == 200 and answer["recovered"] is False and answer["state"] == "none"
    with running_service([*args, "--resolver", service.url]) as online:
        status, answer = online.json("POST", "/api/verify?name=copy.jpg", raw=copy)
    assert status == 200, answer
    assert answer["recovered"] is True and answer["recovered_from"] == service.url
    assert answer["state"] == "valid"
    assert answer["active_manifest"]["label"] == stamped["coffee"].manifest_label
    assert CliRunner().invoke(cli, ["serve", "--resolver", "ftp://x", "--port", "0"]).exit_code == 2


def test_unreachable_resolver_warns_and_keeps_the_offline_verdict(
    home_a: tuple[Path, dict[str, StampResult]], tmp_path: Path
) -> None:
    _, stamped = home_a
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(stripped(stamped["coffee"].data))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = CliRunner().invoke(
        cli, ["verify", str(copy), "--json", "--resolver", f"http://127.0.0.1:{port}"]
    )
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["state"] == "none" and not report["recovered"]
    assert any("cannot reach it" in w for w in report["warnings"])
    assert "Traceback" not in result.stderr
    bad = CliRunner().invoke(cli, ["verify", str(copy), "--resolver", "ftp://example"])
    assert bad.exit_code == 2 and "not an http:// or https:// URL" in bad.stderr


def test_a_service_answering_garbage_is_a_warning(
    home_a: tuple[Path, dict[str, StampResult]], tmp_path: Path
) -> None:
    import http.server
    import threading

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>not json</html>")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _, stamped = home_a
        copy = tmp_path / "copy.jpg"
        copy.write_bytes(stripped(stamped["coffee"].data))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(cli, ["verify", str(copy), "--json", "--resolver", url])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 3
    assert any("did not answer JSON" in w for w in json.loads(result.stdout)["warnings"])


class _ListOnly(ManifestStore):
    """A backend with only the required methods: the generic fingerprints_after must work on it."""

    def __init__(self, inner: SQLiteManifestStore) -> None:
        self.inner = inner

    def record(self, entry: StoreEntry) -> bool:
        return self.inner.record(entry)

    def get_by_payload(self, payload: bytes) -> StoreEntry | None:
        return self.inner.get_by_payload(payload)

    def get_by_label(self, label: str) -> StoreEntry | None:
        return self.inner.get_by_label(label)

    def find_stamped(self, source_sha256: str, output_path: str) -> StoreEntry | None:
        return self.inner.find_stamped(source_sha256, output_path)

    def list(self, limit: int = 100, offset: int = 0) -> list[StoreEntry]:
        return self.inner.list(limit, offset)

    def count(self) -> int:
        return self.inner.count()


def test_fingerprints_after_is_incremental_on_any_backend(tmp_path: Path) -> None:
    sqlite = open_store(tmp_path / "m.db")
    stores: list[ManifestStore] = [sqlite, _ListOnly(sqlite)]

    def add(i: int, with_hash: bool) -> None:
        sqlite.record(
            StoreEntry(
                payload=i.to_bytes(8, "big"),
                manifest_label=f"urn:c2pa:{i}",
                manifest_store=b"m",
                mime="application/c2pa",
                pdq_hash=bytes([i]) * 32 if with_hash else None,
                pdq_window=bytes([i + 100]) * 32 if with_hash and i != 4 else None,
            )
        )

    for i in range(1, 6):
        add(i, with_hash=i != 3)
    for store in stores:
        cursor, rows = store.fingerprints_after(0, limit=2)
        assert [p[-1] for p, _, _ in rows] == [1, 2]
        cursor, rows = store.fingerprints_after(cursor, limit=10)
        assert [(p[-1], w) for p, _, w in rows] == [(4, None), (5, bytes([105]) * 32)]  # 3 has no fingerprint
        assert store.fingerprints_after(cursor) == (cursor, [])
    for store in stores:
        assert store.label_for_payload((4).to_bytes(8, "big")) == "urn:c2pa:4"
        assert store.label_for_payload(bytes(8)) is None
    before = [s.fingerprints_after(0)[0] for s in stores]
    add(6, with_hash=True)
    for store, cursor in zip(stores, before, strict=True):
        six = (6).to_bytes(8, "big"), bytes([6]) * 32, bytes([106]) * 32
        assert store.fingerprints_after(cursor)[1] == [six]
    sqlite.close()


def test_index_returns_the_nearest_within_the_distance() -> None:
    index = pdq.FingerprintIndex()
    base = bytes(32)
    near = bytes([0b111]) + bytes(31)  # 3 bits away
    far = bytes([0xFF]) * 16 + bytes(16)  # 128 bits away
    index.add([1, 2], [far, near])
    index.add([3], [base])
    assert index.nearest(base, 5) == [(3, 0), (2, 3)]
    assert index.nearest(base, 1) == [(3, 0)]
    assert index.nearest(far, 5, max_distance=10) == [(1, 0)]
    assert len(index) == 3
    # Several queries at once: each row at its smallest distance to any of them.
    assert index.nearest_any([far, near], 5, max_distance=10) == [(1, 0), (2, 0), (3, 3)]
    assert index.nearest_any([far], 5, max_distance=10) == index.nearest(far, 5, max_distance=10)
    assert index.nearest_any([], 5) == [] and pdq.FingerprintIndex().nearest_any([base], 5) == []
    # Past the first block of the scan, and k smaller than the hits.
    rng = np.random.default_rng(0)
    big = pdq.FingerprintIndex()
    rows = [bytes(r) for r in rng.integers(0, 256, size=(40_000, 32), dtype=np.uint8)]
    big.add(list(range(40_000)), rows)
    assert sorted(big.nearest_any([bytes(32), rows[35_000], rows[20_000]], 2)) == [(20_000, 0), (35_000, 0)]
    assert pdq.score(0) == 100 and pdq.score(128) == 0 and pdq.score(200) == 0


def test_index_search_agrees_with_a_brute_force_scan() -> None:
    # The FAISS scan and the merge of several queries' nearest rows against the
    # definition: each row's distance is its smallest to any query; the k closest
    # within the threshold, closest first.
    rng = np.random.default_rng(4)
    rows = rng.integers(0, 256, size=(3_000, 32), dtype=np.uint8)
    queries = rows[rng.choice(3_000, size=3, replace=False)].copy()
    queries ^= (rng.random(size=queries.shape) < 0.15).astype(np.uint8) * 0xFF  # ~40-50 bits away
    index = pdq.FingerprintIndex()
    refs = 1_000 + np.arange(3_000, dtype=np.int64)
    for start in range(0, 3_000, 700):  # appended in pieces, as the service refreshes
        index.add(refs[start : start + 700], [r.tobytes() for r in rows[start : start + 700]])
    bits = np.unpackbits(rows, axis=1)
    truth = np.min([(bits != np.unpackbits(q)).sum(axis=1) for q in queries], axis=0)
    for k, limit in ((5, 64), (50, 110), (3_000, 256)):
        expected = sorted((int(truth[i]), int(refs[i])) for i in np.flatnonzero(truth <= limit))[:k]
        got = index.nearest_any([q.tobytes() for q in queries], k, max_distance=limit)
        assert [(d, r) for r, d in got] == expected
        assert sorted(d for _, d in got) == [d for _, d in got]


def test_verify_recovers_audio_credentials_from_a_service(
    identity: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Home A stamps a voice clip; home B, with an empty store, verifies a stripped MP3
    # excerpt of it (and the same identifier copied onto another recording) by asking
    # a service over A's store: the binding of the audio watermark, then the clip.
    from provenance._internal.audio import decode_audio, encode_audio

    from .conftest import ROOT

    source = ROOT / "tests" / "fixtures" / "audio" / "speech_cmu-arctic_aew_a0001-3.ogg"
    voice = decode_audio(source.read_bytes(), source.name).samples[: 6 * 16000]
    other = decode_audio(
        (source.parent / "speech_librispeech_198-209-0000.ogg").read_bytes(), "other"
    ).samples[: 6 * 16000]
    with open_store(tmp_path / "a.db") as store:
        stamped = stamp(encode_audio(voice, 16000, "wav"), identity, INFO, store=store)
    published = decode_audio(stamped.data, "voice.wav").samples
    excerpt = tmp_path / "excerpt.mp3"
    excerpt.write_bytes(encode_audio(published[16000:], 16000, "mp3", bit_rate=128000))
    forged = tmp_path / "forged.wav"
    forged.write_bytes(encode_audio(watermark.audio.embed(other, 16000, stamped.payload), 16000, "wav"))
    home_b = tmp_path / "home-b"
    home_b.mkdir()
    monkeypatch.setenv("PROVENANCE_HOME", str(home_b))
    runner = CliRunner()
    offline = runner.invoke(cli, ["verify", str(excerpt), "--json"])
    assert offline.exit_code == 3, offline.stderr
    assert json.loads(offline.stdout)["state"] == "none"
    with running_service(["--store", str(tmp_path / "a.db")]) as running:
        online = runner.invoke(cli, ["verify", str(excerpt), "--json", "--resolver", running.url])
        forged_remote = runner.invoke(cli, ["verify", str(forged), "--json", "--resolver", running.url])
        status, headers, body = running.request("GET", f"/references/{quote(stamped.manifest_label)}")
    assert online.exit_code == 0, online.stderr
    report = json.loads(online.stdout)
    assert report["recovered"] is True and report["recovered_from"] == running.url
    assert report["state"] == "valid"
    assert report["active_manifest"]["label"] == stamped.manifest_label
    assert report["watermark"]["detected"] is True and report["watermark"]["matches_manifest"] is True
    # The clip was compared with the spectral fingerprint the service serves, as with a local store.
    media_type = {k.lower(): v for k, v in headers.items()}["content-type"]
    assert status == 200 and media_type == "application/vnd.provenance.audio-fingerprint"
    with open_store(tmp_path / "a.db") as store:
        recorded = store.get_by_label(stamped.manifest_label)
    assert recorded is not None and recorded.fingerprint_audio and body == recorded.fingerprint_audio
    assert 0.5 <= report["fingerprint_similarity"] <= 1
    # A copied identifier: the service's binding lookup answers, the likeness check refuses,
    # exactly as verify does against the store the clip was stamped into.
    local = json.loads(
        runner.invoke(cli, ["verify", str(forged), "--json", "--store", str(tmp_path / "a.db")]).stdout
    )
    remote = json.loads(forged_remote.stdout)
    assert local["state"] == remote["state"] == "invalid", remote["summary"]
    assert forged_remote.exit_code != 0
    assert "does not sound like the clip" in remote["summary"]
    assert remote["fingerprint_similarity"] == local["fingerprint_similarity"]
    assert remote["summary"] == local["summary"].replace(
        "the manifest store", f"the resolution service {running.url}"
    )


def test_by_content_recovers_audio_through_its_watermark(identity: Identity, tmp_path: Path) -> None:
    from provenance._internal.audio import decode_audio, encode_audio

    from .conftest import ROOT

    source = ROOT / "tests" / "fixtures" / "audio" / "speech_cmu-arctic_aew_a0001-3.ogg"
    voice = decode_audio(source.read_bytes(), source.name).samples[: 6 * 16000]
    with open_store(tmp_path / "m.db") as store:
        stamped = stamp(encode_audio(voice, 16000, "wav"), identity, INFO, store=store)
        other = decode_audio(
            (source.parent / "speech_librispeech_198-209-0000.ogg").read_bytes(), "other"
        ).samples[: 6 * 16000]
    published = decode_audio(stamped.data, "voice.wav").samples
    excerpt = encode_audio(published[16000:], 16000, "mp3", bit_rate=128000)  # cut, stripped, MP3
    forged = encode_audio(watermark.audio.embed(other, 16000, stamped.payload), 16000, "wav")
    with running_service(["--store", str(tmp_path / "m.db")]) as running:
        mp3 = {"Content-Type": "audio/mpeg"}
        status, _, body = running.request("POST", "/matches/byContent", excerpt, mp3)
        assert status == 200
        matches = json.loads(body)["matches"]
        assert [m["manifestId"] for m in matches] == [stamped.manifest_label]
        assert 40 <= matches[0]["similarityScore"] <= 100
        # The same identifier copied onto another recording does not resolve.
        status, _, body = running.request("POST", "/matches/byContent", forged, {"Content-Type": "audio/wav"})
        assert status == 200 and json.loads(body) == {"matches": []}
        status, _, body = running.request(
            "POST", "/matches/byContent", excerpt[: len(excerpt) // 2 + 5], mp3
        )
        assert status == 400 and "truncated" in json.loads(body)["error"]["message"]
        value = quote(stamped.soft_binding_value)
        assert running.json("GET", f"/matches/byBinding?alg={watermark.audio.ALGORITHM}&value={value}") == (
            200,
            {"matches": [{"manifestId": stamped.manifest_label}]},
        )


def test_a_service_answering_a_manifest_for_another_watermark_is_not_believed(
    identity: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A service (mistaken or hostile) answers the binding lookup of one audio watermark with
    # the manifest of another clip, and serves no likeness reference to compare with.
    import http.server
    import threading

    from provenance._internal.audio import decode_audio, encode_audio

    from .conftest import ROOT

    folder = ROOT / "tests" / "fixtures" / "audio"
    clip = decode_audio((folder / "speech_cmu-arctic_aew_a0001-3.ogg").read_bytes(), "v")
    voice = clip.samples[: 6 * 16000]
    with open_store(tmp_path / "a.db") as store:
        theirs = stamp(encode_audio(voice, 16000, "wav"), identity, INFO, store=store)
        recorded = store.get_by_label(theirs.manifest_label)
    assert recorded is not None
    ours = bytes.fromhex("0123456789abcdef")
    assert ours != theirs.payload
    marked = tmp_path / "marked.wav"
    marked.write_bytes(encode_audio(watermark.audio.embed(voice, 16000, ours), 16000, "wav"))

    class Lying(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            answer = {"matches": [{"manifestId": theirs.manifest_label}]}
            self._send(json.dumps(answer).encode(), "application/json")

        def do_GET(self) -> None:
            if self.path.startswith("/manifests/"):
                self._send(recorded.manifest_store, "application/c2pa")
            else:
                self._send(b"{}", "application/json", 404)

        def _send(self, body: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Lying)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home_b = tmp_path / "home-b"
    home_b.mkdir()
    monkeypatch.setenv("PROVENANCE_HOME", str(home_b))
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(cli, ["verify", str(marked), "--json", "--resolver", url])
    finally:
        server.shutdown()
        server.server_close()
    report = json.loads(result.stdout)
    # Was "valid", recovered, with the watermark said to match credentials declaring another one.
    assert result.exit_code == 3 and report["state"] == "none", result.stderr
    assert report["watermark"]["payload"] == ours.hex()
    assert report["watermark"]["matches_manifest"] is not True
    assert any("does not declare" in w for w in report["warnings"]), report["warnings"]
