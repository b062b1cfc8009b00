"""The authorization code flow end to end in process: discovery, registration, the login page,
code exchange, tool calls, refresh with rotation, and revocation."""

from __future__ import annotations

import httpx
import jwt
import pytest

from tests.oauth import flow
from tests.oauth.conftest import PUBLIC_URL, RESOURCE, SECRET, OAuthApp

pytestmark = pytest.mark.anyio


async def test_a_registered_client_logs_in_calls_tools_refreshes_and_revokes(oauth: OAuthApp) -> None:
    http = oauth.http
    user_id = await oauth.account("ada@example.com")
    client = await flow.register(http)
    assert client.client_secret
    authorized = await flow.authorize(http, client, "ada@example.com")
    assert authorized.iss == PUBLIC_URL
    answer = await flow.exchange(http, client, authorized)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    claims = jwt.decode(tokens["access_token"], SECRET, algorithms=["HS256"], audience=RESOURCE)
    assert claims["sub"] == user_id
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "tasks"
    assert 3500 <= tokens["expires_in"] <= 3600

    added = await flow.call_tool(
        http, tokens["access_token"], "add_task", {"user_id": user_id, "title": "Milk"}
    )
    assert added.status_code == 200, added.text
    assert added.json()["result"]["structuredContent"]["status"] == "success"

    renewed = await flow.refresh(http, client, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    second = renewed.json()
    assert second["refresh_token"] != tokens["refresh_token"]
    listed = await flow.call_tool(http, second["access_token"], "list_tasks", {"user_id": user_id})
    assert listed.json()["result"]["structuredContent"]["data"]["tasks"][0]["title"] == "Milk"

    revoked = await http.post(
        "/revoke",
        data={
            "token": second["refresh_token"],
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
    )
    assert revoked.status_code == 200
    after = await flow.call_tool(http, second["access_token"], "list_tasks", {"user_id": user_id})
    assert after.status_code == 401
    assert (
        'resource_metadata="http://127.0.0.1:5000/.well-known/oauth-protected-resource/mcp"'
        in after.headers["www-authenticate"]
    )
    again = await flow.refresh(http, client, second["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        (None, "tasks"),
        ("tasks", "tasks"),
        ("tasks offline_access", "tasks offline_access"),
        ("offline_access", "tasks offline_access"),
    ],
)
async def test_the_scopes_clients_ask_for_grant_the_tasks(
    oauth: OAuthApp, scope: str | None, granted: str
) -> None:
    """offline_access (which MCP's SDK and others add for a refresh token) is always allowed and
    never grants less than the tasks."""
    user_id = await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    extra = {"scope": scope} if scope else {}
    authorized = await flow.authorize(oauth.http, client, "ada@example.com", **extra)
    tokens = (await flow.exchange(oauth.http, client, authorized)).json()
    assert tokens["scope"] == granted
    listed = await flow.call_tool(oauth.http, tokens["access_token"], "list_tasks", {"user_id": user_id})
    assert listed.status_code == 200


async def test_a_scope_the_client_was_not_registered_for_is_refused(oauth: OAuthApp) -> None:
    client = await flow.register(oauth.http)
    _, challenge = flow.pkce()
    page = await flow.open_login_page(
        oauth.http, client.client_id, client.redirect_uri, challenge, "st", scope="tasks admin"
    )
    query = flow.query_of(page.headers["location"])
    assert query["error"] == "invalid_scope"
    assert query["iss"] == PUBLIC_URL


async def test_a_basic_client_may_send_its_id_only_in_the_authorization_header(oauth: OAuthApp) -> None:
    """RFC 6749 2.3.1; the TypeScript MCP SDK sends client_secret_basic this way."""
    user_id = await oauth.account("ada@example.com")
    client = await flow.register(oauth.http, method="client_secret_basic")
    authorized = await flow.authorize(oauth.http, client, "ada@example.com")
    basic = httpx.BasicAuth(client.client_id, client.client_secret or "")
    answer = await oauth.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": authorized.code,
            "redirect_uri": authorized.redirect_uri,
            "code_verifier": authorized.verifier,
        },
        auth=basic,
    )
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    wrong = httpx.BasicAuth(client.client_id, "not-the-secret")
    refused = await oauth.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=wrong
    )
    assert refused.status_code == 401
    revoked = await oauth.http.post("/revoke", data={"token": tokens["refresh_token"]}, auth=basic)
    assert revoked.status_code == 200
    after = await flow.call_tool(oauth.http, tokens["access_token"], "list_tasks", {"user_id": user_id})
    assert after.status_code == 401
