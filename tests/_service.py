"""Start ``provenance serve`` as a real subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ADDRESS = re.compile(rb"open (http://\S+?)/ in a browser")


def provenance_command() -> list[str]:
    script = Path(sys.executable).with_name("provenance")
    return [str(script)] if script.exists() else [shutil.which("provenance") or "provenance"]


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    stderr_lines: list[bytes] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body; HTTP errors are returned, not raised."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else kw.pop("raw", None)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        headers.update(kw.pop("headers", {}))
        status, _, payload = self.request(method, path, data, headers)
        return status, json.loads(payload) if payload else None


@contextmanager
def running_service(args: Sequence[str], env: dict[str, str] | None = None) -> Iterator[Service]:
    """``provenance serve ARGS --port 0``; yields once it listens, stops it afterwards."""
    process = subprocess.Popen(
        [*provenance_command(), "serve", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert process.stderr is not None
    lines: list[bytes] = []
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    buffered = b""
    url = None
    try:
        # Unbuffered reads: a buffered readline would hide lines from select().
        while url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(timeout=remaining):
                raise AssertionError("the service did not start: " + buffered.decode(errors="replace"))
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                raise AssertionError("the service exited: " + buffered.decode(errors="replace"))
            buffered += chunk
            match = _ADDRESS.search(buffered)
            url = match.group(1).decode() if match else None
        lines.extend(buffered.splitlines(keepends=True))
        yield Service(url, process, lines)
    finally:
        selector.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()
