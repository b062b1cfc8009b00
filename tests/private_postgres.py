"""A PostgreSQL server of a test's own: its own data directory, port and limits.

For fault tests (too few connection slots, a server that stops), which must not disturb the
machine's shared server. `initdb` and `pg_ctl` come from the installed PostgreSQL; as root they
run as the `postgres` user, which PostgreSQL requires. Everything is bounded in time and the
server is stopped and its directory removed whatever the test does.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.transports.processes import free_port

START_DEADLINE_SECONDS = 30


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass(frozen=True)
class PrivateServer:
    port: int
    data_dir: Path
    bin_dir: Path
    # The server's options and log file, to start it again after a test stopped it.
    flags: str = ""
    log: Path | None = None

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode, "-w", "-t", str(START_DEADLINE_SECONDS))

    def start(self) -> None:
        assert self.log is not None
        self.pg_ctl("start", "-w", "-t", str(START_DEADLINE_SECONDS), "-l", str(self.log), "-o", self.flags)

    def url(self, database: str = "postgres", *, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]),
            check=True,
            capture_output=True,
            timeout=START_DEADLINE_SECONDS + 10,
        )


@contextmanager
def private_postgres(settings: Mapping[str, str] | None = None) -> Iterator[PrivateServer]:
    """Start a throwaway PostgreSQL with `settings` (postgresql.conf names) on a free port."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = "PostgreSQL's initdb is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="todo-mcp-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, user="postgres")
        data_dir = root / "data"
        subprocess.run(
            _as_postgres_user(
                [str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres", "--no-sync"]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        port = free_port()
        options = {
            "port": str(port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(root),
            "fsync": "off",
            **(settings or {}),
        }
        flags = " ".join(f"-c {name}={value}" for name, value in options.items())
        server = PrivateServer(port=port, data_dir=data_dir, bin_dir=bin_dir, flags=flags, log=root / "log")
        server.start()
        try:
            yield server
        finally:
            # A test may have left it stopped.
            with suppress(subprocess.CalledProcessError):
                server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
