"""What a client finds before it logs in: the 401 that points at the metadata, and the metadata."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.asgi import running
from tests.conftest import make_settings
from tests.oauth import flow
from tests.oauth.conftest import PUBLIC_URL, RESOURCE, SECRET, OAuthApp
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app

pytestmark = pytest.mark.anyio

RESOURCE_METADATA = f'resource_metadata="{PUBLIC_URL}/.well-known/oauth-protected-resource/mcp"'


async def test_mcp_without_a_token_is_a_401_pointing_at_the_resource_metadata(oauth: OAuthApp) -> None:
    answer = await oauth.http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert RESOURCE_METADATA in challenge
    assert "error=" not in challenge  # RFC 6750 3.1: no error code when no credentials were sent


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c"])
async def test_a_bad_token_is_a_401_invalid_token_with_the_metadata(oauth: OAuthApp, token: str) -> None:
    answer = await flow.call_tool(oauth.http, token, "list_tasks", {"user_id": "someone"})
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert RESOURCE_METADATA in answer.headers["www-authenticate"]


async def test_an_expired_oauth_token_is_a_401_not_a_tool_error(oauth: OAuthApp) -> None:
    user_id = await oauth.account("old@example.com")
    long_ago = int(time.time()) - 7200
    claims = {
        "sub": user_id,
        "aud": RESOURCE,
        "iat": long_ago,
        "exp": long_ago + 3600,
        "gid": 1,
        "scope": "tasks",
    }
    expired = jwt.encode(claims, SECRET, algorithm="HS256")
    answer = await flow.call_tool(oauth.http, expired, "list_tasks", {"user_id": user_id})
    assert answer.status_code == 401
    assert "expired" in answer.headers["www-authenticate"]
    assert RESOURCE_METADATA in answer.headers["www-authenticate"]


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]
)
async def test_protected_resource_metadata_names_the_resource_and_its_server(
    oauth: OAuthApp, path: str
) -> None:
    answer = await oauth.http.get(path)
    assert answer.status_code == 200
    body = answer.json()
    assert body["resource"] == RESOURCE
    assert body["authorization_servers"] == [PUBLIC_URL]
    assert body["scopes_supported"] == ["tasks"]
    assert body["bearer_methods_supported"] == ["header"]


async def test_authorization_server_metadata_says_what_clients_need(oauth: OAuthApp) -> None:
    answer = await oauth.http.get("/.well-known/oauth-authorization-server")
    assert answer.status_code == 200
    body = answer.json()
    assert body["issuer"] == PUBLIC_URL  # exactly: no trailing slash
    assert body["authorization_endpoint"] == f"{PUBLIC_URL}/authorize"
    assert body["token_endpoint"] == f"{PUBLIC_URL}/token"
    assert body["registration_endpoint"] == f"{PUBLIC_URL}/register"
    assert body["revocation_endpoint"] == f"{PUBLIC_URL}/revoke"
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["response_types_supported"] == ["code"]
    assert set(body["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert set(body["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "client_secret_basic",
        "none",
    }
    assert "none" in body["revocation_endpoint_auth_methods_supported"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert body["client_id_metadata_document_supported"] is True
    assert "tasks" in body["scopes_supported"]


async def test_metadata_is_readable_from_a_browser_client(oauth: OAuthApp) -> None:
    """The MCP Inspector runs in a browser: the discovery and token endpoints allow CORS."""
    headers = {"Origin": "http://localhost:6274", "Access-Control-Request-Method": "GET"}
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp"):
        preflight = await oauth.http.options(path, headers=headers)
        assert preflight.status_code == 200, path
        assert preflight.headers["access-control-allow-origin"] == "*"
    token = await oauth.http.options(
        "/token", headers={"Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST"}
    )
    assert token.status_code == 200


async def test_without_public_url_there_is_no_oauth_and_no_discovery(db: Database, database_url: str) -> None:
    settings = make_settings(database_url, jwt_secret=SECRET)
    app = build_http_app(settings, db, host="127.0.0.1", dispose_on_shutdown=False)
    async with running(app) as client:
        assert (await client.get("/.well-known/oauth-authorization-server")).status_code == 404
        answer = await client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert answer.status_code == 401
        assert "resource_metadata" not in answer.headers["www-authenticate"]
