"""The authorization code flow end to end in process: discovery, registration, the login page,
code exchange, tool calls, refresh with rotation, and revocation."""

from __future__ import annotations

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
