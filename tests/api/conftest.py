"""The REST app over the `db` fixture's database (SQLite and PostgreSQL), driven in-process by httpx.

Tokens are made here the ways a client gets them: issued by the server's own `TokenService`
(what `POST /auth/login` returns), or signed by hand to be expired, forged or malformed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from todo_mcp.api.app import build_api_app
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database
from todo_mcp.services.tokens import TokenService

JWT_SECRET: Final = "x" * 40
OTHER_SECRET: Final = "y" * 40
BASE_URL: Final = "http://test"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def now() -> datetime:
    return datetime.now(UTC)


def expired_token(user_id: str) -> str:
    """Signed with the right secret, but expired an hour ago: far beyond the 30 s leeway."""
    return signed({"sub": user_id, "iat": now() - timedelta(hours=2), "exp": now() - timedelta(hours=1)})


def forged_token(user_id: str) -> str:
    """Well-formed and unexpired, but signed with a secret the server does not know."""
    return signed({"sub": user_id, "exp": now() + timedelta(hours=1)}, secret=OTHER_SECRET)


# Each makes the headers of one kind of bad credentials for a user; every one must get a 401.
BAD_CREDENTIALS: Final[dict[str, Callable[[str], dict[str, str]]]] = {
    "missing": lambda _: {},
    "bearer without a token": lambda _: {"Authorization": "Bearer "},
    "basic scheme": lambda _: {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    "expired": lambda user: bearer(expired_token(user)),
    "forged": lambda user: bearer(forged_token(user)),
    "malformed": lambda _: bearer("not-a-jwt"),
    "no subject": lambda _: bearer(signed({"exp": now() + timedelta(hours=1)})),
    "unsigned (alg none)": lambda user: bearer(
        jwt.encode({"sub": user, "exp": now() + timedelta(hours=1)}, "", algorithm="none")
    ),
}


def assert_unauthenticated(response: httpx.Response) -> None:
    """A 401 with a Bearer challenge and the API's error body."""
    assert response.status_code == 401, response.text
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"].strip()
    assert body["error_id"] is None


def assert_client_error(response: httpx.Response, status: int | tuple[int, ...], *words: str) -> None:
    """A 4xx of the expected status whose JSON detail names what was wrong (each of `words`)."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, f"{response.status_code}: {response.text}"
    detail = response.json()["detail"]
    text = detail if isinstance(detail, str) else str(detail)
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} is not in the detail {text!r}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The settings of the `db` fixture's database, with a shared secret so tokens are checked."""
    return make_settings(database_url, jwt_secret=JWT_SECRET)


@pytest.fixture
def tokens(settings: Settings) -> TokenService:
    return TokenService(settings)


@pytest.fixture
def auth_for(tokens: TokenService) -> Callable[[str], dict[str, str]]:
    """The Authorization header of a valid token for a user, as `POST /auth/login` would issue it."""

    def headers(user_id: str) -> dict[str, str]:
        return bearer(tokens.issue(user_id, timedelta(minutes=5)))

    return headers


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return build_api_app(settings, db, dispose_on_shutdown=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=BASE_URL
    ) as http:
        yield http
