"""Connected apps: listed and revoked on the /connections page and through the REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.oauth import flow
from tests.oauth.conftest import OAuthApp
from todo_mcp.api.app import build_api_app

pytestmark = pytest.mark.anyio


async def _connect(
    oauth: OAuthApp, email: str, name: str = "Test client"
) -> tuple[str, flow.Registered, dict[str, str]]:
    user_id = await oauth.account(email)
    client = await flow.register(oauth.http, name=name)
    authorized = await flow.authorize(oauth.http, client, email)
    tokens = (await flow.exchange(oauth.http, client, authorized)).json()
    return user_id, client, tokens


@pytest.fixture
async def rest(oauth: OAuthApp) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api_app(oauth.settings, oauth.db, dispose_on_shutdown=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as client,
    ):
        yield client


async def _rest_token(rest: httpx.AsyncClient, email: str) -> str:
    answer = await rest.post("/auth/login", json={"email": email, "password": flow.PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def test_the_api_lists_and_revokes_connections(oauth: OAuthApp, rest: httpx.AsyncClient) -> None:
    user_id, client, tokens = await _connect(oauth, "ada@example.com", name="Claude")
    rest_token = await _rest_token(rest, "ada@example.com")
    auth = {"Authorization": f"Bearer {rest_token}"}
    listed = await rest.get("/api/me/connections", headers=auth)
    assert listed.status_code == 200
    [connection] = listed.json()
    assert connection["client_id"] == client.client_id
    assert connection["client_name"] == "Claude"
    assert connection["scopes"] == ["tasks"]
    deleted = await rest.delete(f"/api/me/connections/{connection['id']}", headers=auth)
    assert deleted.status_code == 204
    assert (await rest.get("/api/me/connections", headers=auth)).json() == []
    assert (await flow.refresh(oauth.http, client, tokens["refresh_token"])).json()[
        "error"
    ] == "invalid_grant"
    await flow.refused_within(oauth.http, tokens["access_token"], user_id, seconds=8)


async def test_another_users_connection_cannot_be_seen_or_revoked(
    oauth: OAuthApp, rest: httpx.AsyncClient
) -> None:
    ada, _, ada_tokens = await _connect(oauth, "ada@example.com")
    await oauth.account("bob@example.com")
    bob = {"Authorization": f"Bearer {await _rest_token(rest, 'bob@example.com')}"}
    ada_rest = {"Authorization": f"Bearer {await _rest_token(rest, 'ada@example.com')}"}
    [connection] = (await rest.get("/api/me/connections", headers=ada_rest)).json()
    assert (await rest.get("/api/me/connections", headers=bob)).json() == []
    assert (await rest.delete(f"/api/me/connections/{connection['id']}", headers=bob)).status_code == 404
    listed = await flow.call_tool(oauth.http, ada_tokens["access_token"], "list_tasks", {"user_id": ada})
    assert listed.status_code == 200


async def test_rest_and_mcp_tokens_each_work_at_their_own_door_only(
    oauth: OAuthApp, rest: httpx.AsyncClient
) -> None:
    user_id, _, tokens = await _connect(oauth, "ada@example.com")
    rest_token = await _rest_token(rest, "ada@example.com")
    at_mcp = await flow.call_tool(oauth.http, rest_token, "list_tasks", {"user_id": user_id})
    assert at_mcp.status_code == 401
    at_rest = await rest.get("/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert at_rest.status_code == 401
    assert (await rest.get("/api/me", headers={"Authorization": f"Bearer {rest_token}"})).status_code == 200


async def test_the_connections_page_logs_in_lists_and_disconnects(oauth: OAuthApp) -> None:
    user_id, _, tokens = await _connect(oauth, "ada@example.com", name="Cursor")
    browser = oauth.http
    page = await browser.get("/connections")
    assert page.status_code == 200
    assert "Log in to see the apps" in page.text
    logged_in = await flow.submit(browser, page, email="ada@example.com", password=flow.PASSWORD)
    assert logged_in.status_code == 303
    listing = await browser.get("/connections")
    assert "Cursor" in listing.text
    revoke = await flow.submit(browser, listing)
    assert revoke.status_code == 303
    after = await browser.get("/connections")
    assert "No app is connected." in after.text
    # Revoked in this process: refused at once.
    refused = await flow.call_tool(browser, tokens["access_token"], "list_tasks", {"user_id": user_id})
    assert refused.status_code == 401


async def test_the_connections_page_refuses_a_forged_revocation(oauth: OAuthApp) -> None:
    user_id, _, tokens = await _connect(oauth, "ada@example.com")
    page = await oauth.http.get("/connections")
    await flow.submit(oauth.http, page, email="ada@example.com", password=flow.PASSWORD)
    listing = await oauth.http.get("/connections")
    fields = flow.read_form(listing.text).fields
    forged = await oauth.http.post("/connections/revoke", data={**fields, "csrf": "forged"})
    assert forged.status_code == 403
    works = await flow.call_tool(oauth.http, tokens["access_token"], "list_tasks", {"user_id": user_id})
    assert works.status_code == 200


async def test_the_connections_page_says_nothing_about_which_emails_exist(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    page = await oauth.http.get("/connections")
    wrong = await flow.submit(oauth.http, page, email="ada@example.com", password="not the one")
    unknown = await flow.submit(oauth.http, page, email="nobody@example.com", password="not the one")
    assert wrong.status_code == unknown.status_code == 401
    assert "The email or password is incorrect." in wrong.text
    assert "todo_mcp_session" not in wrong.headers.get("set-cookie", "")
