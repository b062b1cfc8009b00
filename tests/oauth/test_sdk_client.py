"""The MCP SDK's own OAuth client (`mcp.client.auth`) against a real `todo-mcp serve --with-api`
process on 127.0.0.1: discovery from the 401, dynamic registration and a metadata document,
the login form filled in over HTTP, code exchange, tool calls, refresh, rotation, revocation,
expiry."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from tests.oauth import flow
from tests.oauth.servers import Server, oauth_server
from tests.tls import DocumentServer, https_server, make_ca
from tests.transports.clients import envelope

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ACCESS_TTL_SECONDS = 5


@pytest.fixture
def documents(tmp_path: Path) -> Iterator[tuple[DocumentServer, Path]]:
    ca = make_ca(tmp_path)
    with https_server(ca) as server:
        yield server, ca.ca_file


@pytest.fixture
def server(database_url: str, tmp_path: Path, documents: tuple[DocumentServer, Path]) -> Iterator[Server]:
    extra = {
        "OAUTH_ACCESS_TOKEN_TTL_SECONDS": str(ACCESS_TTL_SECONDS),
        "JWT_LEEWAY_SECONDS": "0",
        # The test's document server is on loopback: allowed by name, trusted by its CA.
        "OAUTH_CLIENT_METADATA_ALLOWED_HOSTS": "localhost",
        "SSL_CERT_FILE": str(documents[1]),
    }
    with oauth_server(database_url, tmp_path, extra) as running:
        yield running


@dataclass
class MemoryStorage:
    tokens: OAuthToken | None = None
    client: OAuthClientInformationFull | None = None
    history: list[OAuthToken] = field(default_factory=list)

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Person:
    """Where the SDK sends the person: it opens the login page, fills in the form, and hands
    the code the redirect carries back to the SDK's callback."""

    def __init__(self, email: str, password: str = flow.PASSWORD) -> None:
        self.email = email
        self.password = password
        self.logins = 0
        self._result: AuthorizationCodeResult | None = None

    async def open(self, authorization_url: str) -> None:
        self.logins += 1
        async with httpx.AsyncClient(timeout=10) as browser:
            first = await browser.get(authorization_url)
            assert first.status_code == 302, first.text
            location = first.headers["location"]
            assert "/oauth/login?" in location, f"authorize refused: {location}"
            page = await browser.get(location)
            assert page.status_code == 200, page.text
            assert "Connect" in page.text
            answer = await flow.submit(
                browser, page, email=self.email, password=self.password, action="allow"
            )
        assert answer.status_code == 303, answer.text
        query = flow.query_of(answer.headers["location"])
        self._result = AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    async def callback(self) -> AuthorizationCodeResult:
        assert self._result is not None
        return self._result


def _provider(
    server: Server, person: Person, storage: MemoryStorage, *, method: str, metadata_url: str | None = None
) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="SDK test client",
        redirect_uris=["http://127.0.0.1:47123/callback"],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method=method,
    )
    return OAuthClientProvider(
        server_url=server.mcp_url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=person.open,
        callback_handler=person.callback,
        client_metadata_url=metadata_url,
    )


async def _sign_up(server: Server) -> tuple[str, str]:
    email = f"sdk-{secrets.token_hex(4)}@example.com"
    async with httpx.AsyncClient(timeout=10) as http:
        user_id = await flow.sign_up(http, server.api_url, email)
    return user_id, email


async def _tool(provider: OAuthClientProvider, server: Server, name: str, **arguments: Any) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(auth=provider, timeout=15) as http,
        Client(streamable_http_client(server.mcp_url, http_client=http), mode="legacy") as client,
    ):
        return envelope(await client.call_tool(name, arguments))


async def _raw_call(server: Server, token: str, user_id: str) -> int:
    async with httpx.AsyncClient(base_url=server.public_url, timeout=10) as http:
        return (await flow.call_tool(http, token, "list_tasks", {"user_id": user_id})).status_code


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "none"])
async def test_the_sdk_client_registers_logs_in_calls_refreshes_and_is_revoked(
    server: Server, method: str
) -> None:
    user_id, email = await _sign_up(server)
    person, storage = Person(email), MemoryStorage()
    provider = _provider(server, person, storage, method=method)

    added = await _tool(provider, server, "add_task", user_id=user_id, title="Call the plumber")
    assert added["status"] == "success"
    assert person.logins == 1
    assert storage.client is not None
    assert storage.client.token_endpoint_auth_method == method
    assert (storage.client.client_secret is None) == (method == "none")
    first = storage.tokens
    assert first is not None
    assert first.refresh_token

    # Past the access token's lifetime: the server refuses it, the SDK refreshes by itself.
    await anyio.sleep(ACCESS_TTL_SECONDS + 1.5)
    assert await _raw_call(server, first.access_token, user_id) == 401
    listed = await _tool(provider, server, "list_tasks", user_id=user_id)
    assert [task["title"] for task in listed["data"]["tasks"]] == ["Call the plumber"]
    assert person.logins == 1  # refreshed, not logged in again
    second = storage.tokens
    assert second is not None
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token  # rotated

    # Revocation (RFC 7009) by the client, public or confidential.
    client = storage.client
    data = {"token": second.refresh_token or "", "client_id": client.client_id}
    headers: dict[str, str] = {}
    if method == "client_secret_post":
        data["client_secret"] = client.client_secret or ""
    elif method == "client_secret_basic":
        pair = f"{client.client_id}:{client.client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    async with httpx.AsyncClient(timeout=10) as http:
        revoked = await http.post(f"{server.public_url}/revoke", data=data, headers=headers)
        assert revoked.status_code == 200, revoked.text
        assert await _raw_call(server, second.access_token, user_id) == 401
        reused = await http.post(
            f"{server.public_url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": second.refresh_token or "",
                **{k: v for k, v in data.items() if k != "token"},
            },
            headers=headers,
        )
        assert reused.json()["error"] == "invalid_grant"


async def test_the_sdk_client_uses_a_client_metadata_document(
    server: Server, documents: tuple[DocumentServer, Path]
) -> None:
    document_server, _ = documents
    url = document_server.url("/sdk-client.json")
    document_server.documents["/sdk-client.json"] = {
        "client_id": url,
        "client_name": "SDK document client",
        "redirect_uris": ["http://127.0.0.1:47123/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    user_id, email = await _sign_up(server)
    person, storage = Person(email), MemoryStorage()
    provider = _provider(server, person, storage, method="none", metadata_url=url)
    added = await _tool(provider, server, "add_task", user_id=user_id, title="From a document client")
    assert added["status"] == "success"
    assert storage.client is not None
    assert storage.client.client_id == url  # no registration: the URL is the client id
    assert "/sdk-client.json" in document_server.requests


async def test_a_wrong_password_in_the_real_form_grants_nothing(server: Server) -> None:
    user_id, email = await _sign_up(server)
    person, storage = Person(email, password="not the password"), MemoryStorage()
    provider = _provider(server, person, storage, method="none")
    with pytest.raises(BaseException):  # noqa: B017, PT011 - the SDK's flow fails in its own way
        await _tool(provider, server, "list_tasks", user_id=user_id)
    assert storage.tokens is None
