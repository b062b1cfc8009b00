"""A PgBouncer of a test's own, in transaction pooling mode, in front of a PostgreSQL server.

Debian's `pgbouncer` package; it refuses to run as root, so as root it runs as the `postgres`
user. When it is missing the test is skipped, or fails under `CI=true` (`.ci/run` installs it).
Bounded in time; stopped and its directory removed whatever the test does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.private_postgres import _as_postgres_user
from tests.transports.processes import free_port

START_DEADLINE_SECONDS = 15


@dataclass(frozen=True)
class Pooler:
    port: int

    def url_for(self, server_url: str) -> str:
        """`server_url` (a database on the server behind it) as reached through the pooler."""
        return (
            make_url(server_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)
        )


def _executable() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found is None:
        message = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)
    return found


@contextmanager
def private_pgbouncer(server_host: str, server_port: int, *, pool_size: int = 4) -> Iterator[Pooler]:
    executable = _executable()
    root = Path(tempfile.mkdtemp(prefix="todo-mcp-pgbouncer-"))
    try:
        port = free_port()
        (root / "userlist.txt").write_text('"postgres" ""\n')
        (root / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={server_host} port={server_port}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {root / 'userlist.txt'}",
                    "pool_mode = transaction",
                    f"default_pool_size = {pool_size}",
                    "max_client_conn = 500",
                    f"logfile = {root / 'pgbouncer.log'}",
                    f"pidfile = {root / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            for path in (root, *root.iterdir()):
                shutil.chown(path, user="postgres")
        process = subprocess.Popen(
            _as_postgres_user([executable, str(root / "pgbouncer.ini")]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_DEADLINE_SECONDS
            while True:
                assert process.poll() is None, (root / "pgbouncer.log").read_text(errors="replace")
                with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                assert time.monotonic() < deadline, "pgbouncer did not start listening"
                time.sleep(0.05)
            yield Pooler(port=port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    finally:
        shutil.rmtree(root, ignore_errors=True)
