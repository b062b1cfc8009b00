"""An OAuth client for tests that goes through the real pages: it reads the login form's fields
the way a browser would and submits them, so nothing of the page is taken on trust."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx

PASSWORD = "correct horse battery"


class FormReader(HTMLParser):
    """The fields of the page's first form, and its action."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []
        self._in_form = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
            self._in_form = True
        elif tag == "input" and self._in_form and "name" in values:
            self.fields[values["name"]] = values.get("value", "")
        elif tag == "button" and self._in_form and "name" in values:
            self.buttons.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read_form(page: str) -> FormReader:
    reader = FormReader()
    reader.feed(page)
    return reader


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


@dataclass
class Registered:
    client_id: str
    client_secret: str | None
    redirect_uri: str
    body: dict[str, Any] = field(default_factory=dict)


async def sign_up(http: httpx.AsyncClient, api: str, email: str, password: str = PASSWORD) -> str:
    """An account through the REST API; returns its user id."""
    response = await http.post(f"{api}/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


async def register(
    http: httpx.AsyncClient,
    *,
    redirect_uri: str = "http://127.0.0.1:43123/callback",
    method: str = "client_secret_post",
    name: str = "Test client",
) -> Registered:
    response = await http.post(
        "/register",
        json={"redirect_uris": [redirect_uri], "client_name": name, "token_endpoint_auth_method": method},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Registered(body["client_id"], body.get("client_secret"), redirect_uri, body)


@dataclass
class Authorized:
    code: str
    state: str
    iss: str
    verifier: str
    redirect_uri: str


def authorize_query(
    client_id: str, redirect_uri: str, challenge: str, state: str, **extra: str
) -> dict[str, str]:
    """The query of an authorization request (code flow, PKCE S256)."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        **extra,
    }


async def open_login_page(
    http: httpx.AsyncClient, client_id: str, redirect_uri: str, challenge: str, state: str, **extra: str
) -> httpx.Response:
    """GET /authorize and follow the redirect to the login page."""
    params = authorize_query(client_id, redirect_uri, challenge, state, **extra)
    first = await http.get("/authorize", params=params)
    assert first.status_code == 302, first.text
    location = first.headers["location"]
    if "/oauth/login" not in location:
        return first
    page = await http.get(location)
    assert page.status_code == 200, page.text
    return page


async def submit(http: httpx.AsyncClient, page: httpx.Response, **fields: str) -> httpx.Response:
    form = read_form(page.text)
    assert form.action is not None
    data = {**form.fields, **fields}
    # As a browser does: the action relative to the page's own URL.
    return await http.post(str(page.url.join(form.action)), data=data)


async def authorize(
    http: httpx.AsyncClient,
    client: Registered,
    email: str,
    password: str = PASSWORD,
    *,
    redirect_uri: str | None = None,
    **extra: str,
) -> Authorized:
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(8)
    redirect = redirect_uri or client.redirect_uri
    page = await open_login_page(http, client.client_id, redirect, challenge, state, **extra)
    answer = await submit(http, page, email=email, password=password, action="allow")
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(redirect), location
    query = query_of(location)
    return Authorized(query["code"], query["state"], query["iss"], verifier, redirect)


async def exchange(
    http: httpx.AsyncClient, client: Registered, authorized: Authorized, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": authorized.code,
        "redirect_uri": authorized.redirect_uri,
        "client_id": client.client_id,
        "code_verifier": authorized.verifier,
        **({"client_secret": client.client_secret} if client.client_secret else {}),
        **extra,
    }
    return await http.post("/token", data=data)


async def refresh(http: httpx.AsyncClient, client: Registered, refresh_token: str) -> httpx.Response:
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client.client_id,
        **({"client_secret": client.client_secret} if client.client_secret else {}),
    }
    return await http.post("/token", data=data)


async def call_tool(
    http: httpx.AsyncClient, token: str, name: str, arguments: dict[str, Any]
) -> httpx.Response:
    return await http.post(
        "/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        },
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
    )


async def refused_within(http: httpx.AsyncClient, token: str, user_id: str, seconds: float) -> float:
    """How long until /mcp refuses a revoked token (a process re-checks a grant every few
    seconds); fails the test if it still works after `seconds`."""
    started = anyio.current_time()
    while True:
        answer = await call_tool(http, token, "list_tasks", {"user_id": user_id})
        waited = anyio.current_time() - started
        if answer.status_code == 401:
            return waited
        assert waited < seconds, "the revoked token still works"
        await anyio.sleep(0.25)
