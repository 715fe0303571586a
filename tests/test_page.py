"""The verify page's HTTP side (GET /, POST /api/verify) through a real server on loopback."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provenance.trust import TrustPolicy
from provenance.verify import verify_file
from tests._service import Service, running_service

from .conftest import PUBLIC_JPEGS


@pytest.fixture(scope="module")
def served(identity_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    folder = tmp_path_factory.mktemp("served")
    anchors = identity_dir / "root-ca.pem"
    with running_service(["--store", str(folder / "m.db"), "--trust-anchors", str(anchors)]) as service:
        yield service, folder


def test_api_verify_answers_like_verify_json_and_stores_nothing(
    served: tuple[Service, Path], identity_dir: Path
) -> None:
    service, folder = served
    anchors = identity_dir / "root-ca.pem"
    path = PUBLIC_JPEGS / "adobe-20220124-E-dat-CA.jpg"
    status, answer = service.json("POST", "/api/verify?name=../../etc/E-dat-CA.jpg", raw=path.read_bytes())
    assert status == 200
    expected = verify_file(path, policy=TrustPolicy.from_files([anchors])).to_dict()
    document = {k: v for k, v in answer.items() if k not in ("headline", "thumbnails", "html")}
    assert document == {"file": "E-dat-CA.jpg", **expected}  # the name, never a path
    assert answer["headline"] == "Altered: Content Credentials do not match"
    assert answer["thumbnails"]["file"].startswith("data:image/jpeg;base64,")
    assert len(answer["thumbnails"]["chain"]) == len(expected["chain"])
    assert answer["html"].startswith('<article class="cr-report cr-invalid"')
    before = sorted(p.name for p in folder.iterdir())
    service.json("POST", "/api/verify?name=x.jpg", raw=(PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes())
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written next to the store


def test_api_verify_errors_are_clear_json(served: tuple[Service, Path]) -> None:
    service, _ = served
    status, error = service.json("POST", "/api/verify?name=notes.txt", raw=b"just some text\n")
    assert status == 415
    assert error["error"]["message"].startswith("notes.txt: not a supported media format")
    status, error = service.json("POST", "/api/verify", raw=b"")
    assert status == 400 and "no file was sent" in error["error"]["message"]
    status, error = _announce_only(service.url, 65 * 1024 * 1024)
    assert status == 413 and "accepts at most 67108864" in error["error"]["message"]
    status, error = service.json("POST", "/api/verify?name=cut.jpg", raw=b"\xff\xd8\xff\xe0\x00\x10JFIF")
    assert status in (415, 422) and error["error"]["message"].startswith("cut.jpg")
    assert service.json("GET", "/assets/../../pyproject.toml")[0] == 404
    assert service.json("GET", "/assets/secret.py")[0] == 404


def _announce_only(url: str, size: int) -> tuple[int, Any]:
    """Announce a body of ``size`` bytes but send none: the refusal must not wait for it."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", "/api/verify?name=big.jpg")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_page_is_self_contained_and_says_files_are_not_stored(served: tuple[Service, Path]) -> None:
    service, _ = served
    status, headers, body = service.request("GET", "/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "checked in memory on this server and never stored" in page
    assert "Signers are checked against 1 trusted certificate." in page and "{{" not in page
    assert 'data-max-bytes="67108864"' in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith(("/", "#", "data:")) for a in assets)  # no CDN, no web font
    for asset in ("/assets/page.js", "/assets/page.css", "/assets/report.css"):
        status, _, content = service.request("GET", asset)
        assert status == 200 and b"http://" not in content and b"https://" not in content
    status, document = service.json("GET", "/openapi.json")
    assert "/api/verify" in document["paths"]


def test_a_corrupt_store_still_verifies_what_the_file_carries(tmp_path: Path) -> None:
    # As `provenance verify` does: the store only serves recovery (it was a 503 for every file).
    from provenance.service import ServiceConfig
    from provenance.service.page import _verify

    store = tmp_path / "manifests.db"
    store.write_bytes(b"this is not a database" * 300)
    path = PUBLIC_JPEGS / "adobe-20220124-A.jpg"
    answer = _verify(path.read_bytes(), "A.jpg", ServiceConfig(store=str(store)), TrustPolicy(), 0)
    assert answer["state"] == verify_file(path).state.value
    assert any("cannot open the manifest store" in w for w in answer["warnings"])
    assert "stripped credentials cannot be recovered" in answer["html"]
