"""A real `todo-mcp serve --with-api` process with OAuth on, for the tests that drive it from
outside (the SDK's OAuth client, a browser)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.transports.processes import (
    ServerProcess,
    free_port,
    run_cli,
    server_env,
    spawn_command,
    stop,
    wait_healthy,
)


@dataclass
class Server:
    process: ServerProcess
    public_url: str
    api_url: str

    @property
    def mcp_url(self) -> str:
        return f"{self.public_url}/mcp"


@contextmanager
def oauth_server(
    database_url: str, workdir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    port, api_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{port}"
    env = server_env(database_url, {"PUBLIC_URL": public_url, "API_PORT": str(api_port), **(extra_env or {})})
    # As the README says: the schema first, then the server.
    upgrade = run_cli(["db", "upgrade"], cwd=workdir, env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    process = spawn_command(
        workdir, env, "serve", ["serve", "--with-api", "--host", "127.0.0.1", "--port", str(port)], port=port
    )
    try:
        wait_healthy(public_url, f"http://127.0.0.1:{api_port}", processes=[process])
        yield Server(process, public_url, f"http://127.0.0.1:{api_port}")
    finally:
        stop(process)
