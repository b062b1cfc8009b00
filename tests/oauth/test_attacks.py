"""Attacks on the flow, each refused with nothing granted: replayed codes, wrong verifiers and
redirect URIs, reused refresh tokens, tokens for another audience, open redirects, forged forms,
another user's tasks."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import jwt
import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from tests.asgi import running
from tests.oauth import flow
from tests.oauth.conftest import PUBLIC_URL, RESOURCE, SECRET, OAuthApp, oauth_settings
from todo_mcp.db.engine import Database
from todo_mcp.db.models import OAuthCode, OAuthGrant
from todo_mcp.db.types import utcnow
from todo_mcp.mcp.http_app import build_http_app

pytestmark = pytest.mark.anyio


async def _grants(oauth: OAuthApp, *, active_only: bool = False) -> int:
    query = select(func.count()).select_from(OAuthGrant)
    if active_only:
        query = query.where(col(OAuthGrant.revoked_at).is_(None))
    async with oauth.db.transaction() as session:
        return int((await session.exec(query)).one())


async def _connected(
    oauth: OAuthApp, email: str = "ada@example.com"
) -> tuple[str, flow.Registered, dict[str, str]]:
    user_id = await oauth.account(email)
    client = await flow.register(oauth.http)
    authorized = await flow.authorize(oauth.http, client, email)
    answer = await flow.exchange(oauth.http, client, authorized)
    assert answer.status_code == 200, answer.text
    return user_id, client, answer.json()


async def _works(oauth: OAuthApp, access_token: str, user_id: str) -> int:
    answer = await flow.call_tool(oauth.http, access_token, "list_tasks", {"user_id": user_id})
    return answer.status_code


# --- codes ---------------------------------------------------------------------------------


async def test_a_code_used_twice_is_refused_and_revokes_what_the_first_use_granted(oauth: OAuthApp) -> None:
    user_id = await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    authorized = await flow.authorize(oauth.http, client, "ada@example.com")
    first = await flow.exchange(oauth.http, client, authorized)
    assert first.status_code == 200
    tokens = first.json()
    second = await flow.exchange(oauth.http, client, authorized)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert await _works(oauth, tokens["access_token"], user_id) == 401
    assert (await flow.refresh(oauth.http, client, tokens["refresh_token"])).json()[
        "error"
    ] == "invalid_grant"
    assert await _grants(oauth, active_only=True) == 0


async def test_a_code_with_the_wrong_verifier_grants_nothing(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    authorized = await flow.authorize(oauth.http, client, "ada@example.com")
    wrong, _ = flow.pkce()
    answer = await flow.exchange(oauth.http, client, authorized, code_verifier=wrong)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert "access_token" not in answer.json()
    assert await _grants(oauth) == 0


async def test_a_code_with_another_redirect_uri_grants_nothing(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    authorized = await flow.authorize(oauth.http, client, "ada@example.com")
    answer = await flow.exchange(oauth.http, client, authorized, redirect_uri="http://127.0.0.1:43123/other")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert await _grants(oauth) == 0


async def test_a_code_of_another_client_grants_nothing(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    thief = await flow.register(oauth.http, name="Thief")
    authorized = await flow.authorize(oauth.http, client, "ada@example.com")
    answer = await flow.exchange(oauth.http, thief, authorized)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert await _grants(oauth) == 0


async def test_an_expired_code_grants_nothing(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    authorized = await flow.authorize(oauth.http, client, "ada@example.com")
    async with oauth.db.transaction() as session:
        await session.exec(update(OAuthCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    answer = await flow.exchange(oauth.http, client, authorized)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert await _grants(oauth) == 0


async def test_a_confidential_client_needs_its_secret(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    authorized = await flow.authorize(oauth.http, client, "ada@example.com")
    answer = await flow.exchange(oauth.http, client, authorized, client_secret="guessed")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert await _grants(oauth) == 0


# --- refresh tokens ------------------------------------------------------------------------


async def test_a_refresh_token_reused_after_rotation_revokes_the_whole_family(oauth: OAuthApp) -> None:
    user_id, client, tokens = await _connected(oauth)
    rotated = await flow.refresh(oauth.http, client, tokens["refresh_token"])
    assert rotated.status_code == 200
    newest = rotated.json()
    assert await _works(oauth, newest["access_token"], user_id) == 200
    # The old one again: a leaked copy. Everything of the family stops.
    reused = await flow.refresh(oauth.http, client, tokens["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert (await flow.refresh(oauth.http, client, newest["refresh_token"])).json()[
        "error"
    ] == "invalid_grant"
    assert await _works(oauth, newest["access_token"], user_id) == 401
    assert await _grants(oauth, active_only=True) == 0


async def test_a_refresh_token_of_another_client_is_refused(oauth: OAuthApp) -> None:
    _, _, tokens = await _connected(oauth)
    thief = await flow.register(oauth.http, name="Thief")
    answer = await flow.refresh(oauth.http, thief, tokens["refresh_token"])
    assert answer.json()["error"] == "invalid_grant"


# --- audiences -----------------------------------------------------------------------------


async def test_a_token_for_another_audience_is_refused_at_mcp(oauth: OAuthApp) -> None:
    user_id = await oauth.account("ada@example.com")
    now = int(time.time())
    for audience in ("https://other.example.com/mcp", f"{PUBLIC_URL}/api", f"{PUBLIC_URL}/mcp/other"):
        token = jwt.encode(
            {"sub": user_id, "aud": audience, "iat": now, "exp": now + 600}, SECRET, algorithm="HS256"
        )
        answer = await flow.call_tool(oauth.http, token, "list_tasks", {"user_id": user_id})
        assert answer.status_code == 401, audience
        assert "another audience" in answer.json()["message"]


async def test_an_oauth_token_without_a_live_grant_is_refused(oauth: OAuthApp) -> None:
    """A token signed right but naming a grant that does not exist (or no longer does)."""
    user_id = await oauth.account("ada@example.com")
    now = int(time.time())
    claims = {"sub": user_id, "aud": RESOURCE, "iat": now, "exp": now + 600, "gid": 999_999, "scope": "tasks"}
    answer = await flow.call_tool(
        oauth.http, jwt.encode(claims, SECRET, algorithm="HS256"), "list_tasks", {"user_id": user_id}
    )
    assert answer.status_code == 401


async def test_a_shared_secret_token_without_audience_still_works_at_mcp(oauth: OAuthApp) -> None:
    user_id = await oauth.account("ada@example.com")
    now = int(time.time())
    token = jwt.encode({"sub": user_id, "iat": now, "exp": now + 600}, SECRET, algorithm="HS256")
    assert await _works(oauth, token, user_id) == 200


async def test_audienceless_tokens_can_be_turned_off_at_mcp(db: Database, database_url: str) -> None:
    settings = oauth_settings(database_url, mcp_accept_tokens_without_audience=False)
    app = build_http_app(settings, db, host="127.0.0.1", dispose_on_shutdown=False)
    now = int(time.time())
    token = jwt.encode({"sub": "ada", "iat": now, "exp": now + 600}, SECRET, algorithm="HS256")
    async with running(app) as client:
        client.base_url = httpx.URL(PUBLIC_URL)
        answer = await flow.call_tool(client, token, "list_tasks", {"user_id": "ada"})
    assert answer.status_code == 401
    assert "no audience" in answer.json()["message"]


# --- isolation -----------------------------------------------------------------------------


async def test_a_token_granted_for_one_user_never_acts_for_another(oauth: OAuthApp) -> None:
    ada, _, tokens = await _connected(oauth)
    bob = await oauth.account("bob@example.com")
    attempts: list[tuple[str, dict[str, object]]] = [
        ("list_tasks", {"user_id": bob}),
        ("add_task", {"user_id": bob, "title": "Not yours"}),
        ("delete_task", {"user_id": bob, "task_id": 1}),
    ]
    for name, arguments in attempts:
        answer = await flow.call_tool(oauth.http, tokens["access_token"], name, arguments)
        envelope = answer.json()["result"]["structuredContent"]
        assert envelope["status"] == "error"
        assert envelope["data"]["error_code"] == 403, name
    mine = await flow.call_tool(oauth.http, tokens["access_token"], "list_tasks", {"user_id": ada})
    assert mine.json()["result"]["structuredContent"]["status"] == "success"


# --- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.com/callback",
        "http://127.0.0.1.evil.example.com/callback",
        "http://127.0.0.1:43123/callback/../../evil",
        "http://127.0.0.1:43123/callbackx",
        "http://127.0.0.1:43123/callback?next=https://evil.example.com",
    ],
)
async def test_authorize_never_redirects_to_an_unregistered_uri(oauth: OAuthApp, redirect_uri: str) -> None:
    client = await flow.register(oauth.http)
    _, challenge = flow.pkce()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s",
    }
    answer = await oauth.http.get("/authorize", params=params)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.json()["error"] == "invalid_request"


async def test_a_loopback_redirect_uri_matches_on_any_port(oauth: OAuthApp) -> None:
    """RFC 8252 7.3: VS Code and Claude Code listen on whichever port is free."""
    user_id = await oauth.account("ada@example.com")
    client = await flow.register(oauth.http, redirect_uri="http://127.0.0.1/callback")
    authorized = await flow.authorize(
        oauth.http, client, "ada@example.com", redirect_uri="http://127.0.0.1:54321/callback"
    )
    answer = await flow.exchange(oauth.http, client, authorized)
    assert answer.status_code == 200, answer.text
    assert await _works(oauth, answer.json()["access_token"], user_id) == 200


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://evil.example.com/callback",
        "javascript:alert(1)",
        "data:text/html,hi",
        "https://a.example.com/cb#frag",
    ],
)
async def test_registration_refuses_unsafe_redirect_uris(oauth: OAuthApp, redirect_uri: str) -> None:
    answer = await oauth.http.post("/register", json={"redirect_uris": [redirect_uri], "client_name": "x"})
    assert answer.status_code == 400
    assert answer.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")


async def test_registration_accepts_app_schemes_and_https(oauth: OAuthApp) -> None:
    for uri in ("cursor://anysphere.cursor-mcp/oauth/callback", "https://claude.ai/api/mcp/auth_callback"):
        answer = await oauth.http.post("/register", json={"redirect_uris": [uri], "client_name": "x"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["scope"] == "tasks"


async def test_registration_is_rate_limited_per_address(db: Database, database_url: str) -> None:
    app = build_http_app(oauth_settings(database_url, oauth_registrations_per_minute=3), db, host="127.0.0.1")
    async with running(app) as client:
        client.base_url = httpx.URL(PUBLIC_URL)
        codes = [
            (await client.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})).status_code
            for _ in range(5)
        ]
        last = await client.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})
    assert codes == [201, 201, 201, 429, 429]
    assert int(last.headers["retry-after"]) >= 1


async def test_a_resource_that_is_not_ours_is_refused(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    _, challenge = flow.pkce()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "code_challenge": challenge,
        "state": "st",
        "resource": "https://other.example.com/mcp",
    }
    answer = await oauth.http.get("/authorize", params=params)
    assert answer.status_code == 302
    query = flow.query_of(answer.headers["location"])
    assert query["error"] == "invalid_target"
    assert query["state"] == "st"
    assert query["iss"] == PUBLIC_URL
    authorized = await flow.authorize(oauth.http, client, "ada@example.com", resource=RESOURCE)
    refused = await flow.exchange(oauth.http, client, authorized, resource="https://other.example.com/mcp")
    assert refused.json()["error"] == "invalid_target"
    assert await _grants(oauth) == 0


# --- the login form ------------------------------------------------------------------------


async def _login_page(
    oauth: OAuthApp, client: flow.Registered, http: httpx.AsyncClient | None = None
) -> httpx.Response:
    _, challenge = flow.pkce()
    return await flow.open_login_page(
        http or oauth.http, client.client_id, client.redirect_uri, challenge, "st"
    )


async def test_the_consent_form_refuses_a_post_without_the_csrf_cookie(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    page = await _login_page(oauth, client)
    form = flow.read_form(page.text).fields
    # Another site's page posting the same fields: the browser sends no SameSite=Lax cookie.
    oauth.http.cookies.clear()
    answer = await oauth.http.post(
        "/oauth/login",
        data={**form, "email": "ada@example.com", "password": flow.PASSWORD, "action": "allow"},
    )
    assert answer.status_code == 403
    assert "location" not in answer.headers
    assert await _grants(oauth) == 0


async def test_the_consent_form_refuses_a_csrf_token_of_another_browser_or_request(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    victim_page = await _login_page(oauth, client)
    async with httpx.AsyncClient(transport=oauth.http._transport, base_url=PUBLIC_URL) as attacker:
        attacker_page = await _login_page(oauth, client, attacker)
    attacker_fields = flow.read_form(attacker_page.text).fields
    victim_fields = flow.read_form(victim_page.text).fields
    credentials = {"email": "ada@example.com", "password": flow.PASSWORD, "action": "allow"}
    # The attacker's own token, sent from the victim's browser (with the victim's cookie).
    answer = await oauth.http.post("/oauth/login", data={**attacker_fields, **credentials})
    assert answer.status_code == 403
    # The victim's token bound to another authorization request.
    mixed = {**victim_fields, "request": attacker_fields["request"]}
    answer = await oauth.http.post("/oauth/login", data={**mixed, **credentials})
    assert answer.status_code == 403
    assert await _grants(oauth) == 0


async def test_a_tampered_or_expired_request_is_refused(oauth: OAuthApp) -> None:
    answer = await oauth.http.get("/oauth/login", params={"request": "forged.value.here"})
    assert answer.status_code == 400
    assert "expired" in answer.text


async def test_a_wrong_password_says_so_without_saying_whether_the_email_exists(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    page = await _login_page(oauth, client)
    wrong = await flow.submit(
        oauth.http, page, email="ada@example.com", password="wrong password", action="allow"
    )
    unknown = await flow.submit(
        oauth.http, page, email="nobody@example.com", password="wrong password", action="allow"
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "The email or password is incorrect." in wrong.text
    assert "The email or password is incorrect." in unknown.text
    assert wrong.text.replace("ada@example.com", "") == unknown.text.replace("nobody@example.com", "")
    assert await _grants(oauth) == 0


async def test_the_login_page_slows_down_repeated_failures_like_the_api(oauth: OAuthApp) -> None:
    await oauth.account("ada@example.com")
    client = await flow.register(oauth.http)
    page = await _login_page(oauth, client)
    codes = [
        (
            await flow.submit(
                oauth.http, page, email="ada@example.com", password="wrong pass", action="allow"
            )
        ).status_code
        for _ in range(6)
    ]
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
    # Even the right password waits now.
    right = await flow.submit(
        oauth.http, page, email="ada@example.com", password=flow.PASSWORD, action="allow"
    )
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) > 0


async def test_deny_returns_access_denied_with_state_and_issuer(oauth: OAuthApp) -> None:
    client = await flow.register(oauth.http)
    page = await _login_page(oauth, client)
    answer = await flow.submit(oauth.http, page, action="deny")
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(client.redirect_uri)
    query = flow.query_of(location)
    assert query["error"] == "access_denied"
    assert query["state"] == "st"
    assert query["iss"] == PUBLIC_URL
    assert "code" not in query


async def test_the_pages_cannot_be_framed(oauth: OAuthApp) -> None:
    client = await flow.register(oauth.http)
    page = await _login_page(oauth, client)
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
