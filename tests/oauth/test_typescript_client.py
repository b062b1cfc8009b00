"""The TypeScript MCP SDK's own OAuth client (@modelcontextprotocol/sdk, tests/js) against a real
`todo-mcp serve --with-api` process: discovery from the 401, registration, the login form filled
in over HTTP, tool calls, a refresh after the access token expired, then revocation."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.oauth import flow
from tests.oauth.js import JS, node_with_packages
from tests.oauth.servers import Server, oauth_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ACCESS_TTL_SECONDS = 5


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    extra = {"OAUTH_ACCESS_TOKEN_TTL_SECONDS": str(ACCESS_TTL_SECONDS), "JWT_LEEWAY_SECONDS": "0"}
    with oauth_server(database_url, tmp_path, extra) as running:
        yield running


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "none"])
async def test_the_typescript_sdk_client_connects_through_the_login(server: Server, method: str) -> None:
    node = node_with_packages()
    email = f"ts-{secrets.token_hex(4)}@example.com"
    async with httpx.AsyncClient(timeout=10) as http:
        user_id = await flow.sign_up(http, server.api_url, email)
    request = {
        "mcpUrl": server.mcp_url,
        "redirectUri": "http://127.0.0.1:47555/callback",
        "authMethod": method,
        "email": email,
        "password": flow.PASSWORD,
        "userId": user_id,
        "waitMs": (ACCESS_TTL_SECONDS + 1.5) * 1000,
    }
    run = await anyio.run_process([node, str(JS / "oauth_client.mjs"), json.dumps(request)], check=False)
    assert run.returncode == 0, run.stderr.decode(errors="replace") + server.process.log()
    seen = json.loads(run.stdout.decode().strip().splitlines()[-1])

    assert seen["logins"] == 1  # the second connection refreshed instead of logging in again
    assert seen["iss"] == server.public_url
    assert seen["tools"] == ["add_task", "complete_task", "delete_task", "list_tasks", "update_task"]
    assert seen["added"]["status"] == "success"
    assert [task["title"] for task in seen["listed"]["data"]["tasks"]] == ["From TypeScript"]
    first, *later = seen["tokens"]
    assert later, "the SDK never refreshed"
    assert later[-1]["refresh_token"] != first["refresh_token"]
    assert (seen["clientSecret"] is None) == (method == "none")

    # The client's last refresh token, revoked the RFC 7009 way, ends the connection.
    data = {"token": later[-1]["refresh_token"], "client_id": seen["clientId"]}
    auth = None
    if method == "client_secret_post":
        data["client_secret"] = seen["clientSecret"]
    elif method == "client_secret_basic":
        auth = httpx.BasicAuth(seen["clientId"], seen["clientSecret"])
    async with httpx.AsyncClient(base_url=server.public_url, timeout=10, auth=auth) as http:
        assert (await http.post("/revoke", data=data)).status_code == 200
        refused = await flow.call_tool(http, later[-1]["access_token"], "list_tasks", {"user_id": user_id})
    assert refused.status_code == 401
