"""Any process finishes a flow another began: two apps on one database, no memory shared but
the database (and the secret every process is configured with)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.asgi import running
from tests.oauth import flow
from tests.oauth.conftest import PUBLIC_URL, OAuthApp, oauth_settings
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def second(oauth: OAuthApp, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Another process: its own engine, provider, caches and cookie jar."""
    db = Database.from_settings(oauth_settings(database_url))
    app = build_http_app(oauth_settings(database_url), db, host="127.0.0.1")
    async with running(app) as client:
        client.base_url = httpx.URL(PUBLIC_URL)
        yield client


async def test_each_step_of_a_flow_on_another_process(oauth: OAuthApp, second: httpx.AsyncClient) -> None:
    first = oauth.http
    user_id = await oauth.account("ada@example.com")
    client = await flow.register(first)
    verifier, challenge = flow.pkce()
    # Authorize here, show the page there (the browser keeps its cookies across processes).
    start = await first.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "code_challenge": challenge,
            "state": "st",
        },
    )
    second.cookies = first.cookies
    page = await second.get(start.headers["location"])
    assert page.status_code == 200
    first.cookies = second.cookies
    answer = await flow.submit(first, page, email="ada@example.com", password=flow.PASSWORD, action="allow")
    query = flow.query_of(answer.headers["location"])
    authorized = flow.Authorized(query["code"], query["state"], query["iss"], verifier, client.redirect_uri)
    tokens = (await flow.exchange(second, client, authorized)).json()
    assert (
        await flow.call_tool(first, tokens["access_token"], "list_tasks", {"user_id": user_id})
    ).status_code == 200
    renewed = (await flow.refresh(first, client, tokens["refresh_token"])).json()
    assert (
        await flow.call_tool(second, renewed["access_token"], "list_tasks", {"user_id": user_id})
    ).status_code == 200
    # Revoked on one process: the other stops taking the token within its few seconds of cache.
    revoke = {
        "token": renewed["refresh_token"],
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    assert (await second.post("/revoke", data=revoke)).status_code == 200
    await flow.refused_within(first, renewed["access_token"], user_id, seconds=8)
