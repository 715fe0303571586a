"""The HTTP service's own guarantees, through real HTTP on loopback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli
from tests._service import running_service


def test_serves_health_openapi_and_json_errors(tmp_path: Path) -> None:
    with running_service(["--store", str(tmp_path / "m.db")]) as service:
        assert service.json("GET", "/healthz") == (200, {"status": "ok"})
        status, document = service.json("GET", "/openapi.json")
        assert status == 200 and document["openapi"].startswith("3.")
        status, error = service.json("GET", "/no/such/path")
        assert status == 404 and error["error"]["status"] == 404
        status, error = service.json("POST", "/healthz", body={})
        assert status == 405 and "error" in error
        # Still answering after the errors.
        assert service.json("GET", "/healthz")[0] == 200
        service.process.terminate()
        service.process.wait(timeout=20)
        assert service.process.stderr is not None
        rest = service.process.stderr.read().splitlines()
        log = [json.loads(line) for line in rest if line.startswith(b"{")]
    paths = [(entry["path"], entry["status"]) for entry in log]
    assert ("/healthz", 200) in paths and ("/no/such/path", 404) in paths
    assert all(entry["request_id"] and entry["ms"] >= 0 for entry in log)


def test_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path / "m.db"), "--port", str(port)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "cannot listen on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
