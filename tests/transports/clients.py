"""Clients for the transport tests: the SDK's MCP client with a bearer token, and database set-up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS

from tests.conftest import make_settings
from todo_mcp.db import migrate
from todo_mcp.db.engine import Database
from todo_mcp.services import users

# The two protocol eras one endpoint serves: the initialize handshake, and 2026-07-28's none.
MODES = ("legacy", "2026-07-28")
TOOL_NAMES = frozenset({"add_task", "list_tasks", "complete_task", "delete_task", "update_task"})
CALL_TIMEOUT_SECONDS = 15.0


@asynccontextmanager
async def mcp_client(url: str, token: str | None, *, mode: str) -> AsyncIterator[Client]:
    """The SDK client over Streamable HTTP, sending `token` as a bearer token on every request."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=CALL_TIMEOUT_SECONDS) as http,
        Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            read_timeout_seconds=CALL_TIMEOUT_SECONDS,
        ) as client,
    ):
        # The mode must really have been used, or the two parametrizations test one thing twice.
        if mode == "legacy":
            assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        else:
            assert client.protocol_version == mode
        yield client


def envelope(result: CallToolResult) -> dict[str, Any]:
    """The result's envelope, after checking the text block says the same and isError agrees."""
    structured = result.structured_content
    assert isinstance(structured, dict), f"no structured content in {result!r}"
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    assert len(texts) == 1, f"expected one text block, got {result.content!r}"
    assert json.loads(texts[0]) == structured
    assert result.is_error == (structured["status"] == "error")
    return structured


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    return envelope(await client.call_tool(tool, arguments))


async def migrate_database(database_url: str) -> None:
    db = Database.from_settings(make_settings(database_url))
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


async def create_users(database_url: str, *user_ids: str) -> None:
    """Create users directly through the service layer (the database must be migrated)."""
    db = Database.from_settings(make_settings(database_url))
    try:
        async with db.transaction() as session:
            for user_id in user_ids:
                await users.create_user(session, user_id=user_id, email=f"{user_id}@example.com")
    finally:
        await db.dispose()
