"""A throwaway PostgreSQL server for tests and benchmarks, from the Debian package.

The server runs as an unprivileged user (initdb refuses root) in a temporary
folder that user owns, listens on a free loopback port and on a Unix socket in
that folder, trusts local connections (nothing else can reach it) and is
stopped and deleted by :meth:`PostgresServer.stop`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "PostgreSQL is not installed: apt-get install postgresql"
SUPERUSER = "provenance"


def find_binaries() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl, if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [p for p in found if (p / "pg_ctl").exists()]
    if not found:
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """Start with :meth:`start`, connect with :attr:`url` or :meth:`create_database`."""

    def __init__(self, bin_dir: Path, *, cpu: int | None = None, fsync: bool = False) -> None:
        self.bin_dir = bin_dir
        self.cpu = cpu
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="provenance-pg-"))
        self.port = 0
        self._runas: list[str] = []
        self._databases = 0

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        prefix = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        proc = subprocess.run(
            [*self._runas, *prefix, *args], capture_output=True, text=True, check=False, cwd=self.root
        )
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stderr.strip()}\n{tail}")

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            # The Debian package creates 'postgres'; 'nobody' will do elsewhere.
            for name in ("postgres", "nobody"):
                try:
                    user = pwd.getpwnam(name)
                except KeyError:
                    continue
                os.chown(self.root, user.pw_uid, user.pw_gid)
                self._runas = [
                    "setpriv",
                    f"--reuid={user.pw_uid}",
                    f"--regid={user.pw_gid}",
                    "--clear-groups",
                ]
                break
            else:
                raise RuntimeError("no unprivileged user (postgres or nobody) to run PostgreSQL as")
        data = self.root / "data"
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
            "--no-sync",
        )
        self.port = _free_port()
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.fsync:
            options += " -F"  # throwaway data: durability across power loss is not under test
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
        )
        return self

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"test_{self._databases}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def execute(self, url: str, sql: str) -> None:
        """Run ``sql`` (several statements allowed) on the database at ``url``."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        if self.port:
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "stop", "-m", "fast", "-D", str(self.root / "data"))
            finally:
                self.port = 0
        shutil.rmtree(self.root, ignore_errors=True)
