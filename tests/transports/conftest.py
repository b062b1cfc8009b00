"""Fixtures for the transport tests: real `todo-mcp serve` processes on a real database.

Servers are started once per module (start-up costs about a second) and stopped when the module
ends. When a test fails, the log of every server it used is attached to its report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator, Mapping
from contextlib import ExitStack

import pytest

from tests.transports.clients import MODES, create_users, migrate_database
from tests.transports.processes import LaunchServers, ServerProcess, running_servers

SERVERS_USED = pytest.StashKey[list[ServerProcess]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for node in item.listchain():
            for server in node.stash.get(SERVERS_USED, []):
                report.sections.append((f"todo-mcp serve on port {server.port}", server.log()))
    return report


@pytest.fixture(scope="module")
def launch_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LaunchServers]:
    """Starts `todo-mcp serve` processes that live until the module's tests are done.

    `launch(count, database_url=..., extra_env={...})` returns healthy servers, each in a fresh
    working directory so no `.env` or `todo.db` from elsewhere leaks in.
    """
    with ExitStack() as cleanup:

        def launch(
            count: int = 1, *, database_url: str, extra_env: Mapping[str, str] | None = None
        ) -> list[ServerProcess]:
            workdir = tmp_path_factory.mktemp("server")
            servers = cleanup.enter_context(
                running_servers(count, database_url=database_url, workdir=workdir, extra_env=extra_env)
            )
            request.node.stash.setdefault(SERVERS_USED, []).extend(servers)
            return servers

        yield launch


@pytest.fixture(scope="module")
def seeded_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file with the users alice and bob."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'todo.db'}"

    async def seed() -> None:
        await migrate_database(url)
        await create_users(url, "alice", "bob")

    asyncio.run(seed())
    return url


@pytest.fixture(scope="module")
def server_extra_env() -> dict[str, str]:
    """Settings for this module's server beyond DATABASE_URL and JWT_SECRET; modules override it."""
    return {}


@pytest.fixture(scope="module")
def server(
    launch_servers: LaunchServers, seeded_sqlite_url: str, server_extra_env: dict[str, str]
) -> ServerProcess:
    """One server on the seeded SQLite database, checking tokens signed with JWT_SECRET."""
    return launch_servers(database_url=seeded_sqlite_url, extra_env=server_extra_env)[0]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """The protocol era the SDK client speaks: the initialize handshake, or 2026-07-28."""
    value: str = request.param
    return value
