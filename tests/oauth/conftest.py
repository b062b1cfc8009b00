"""The MCP app with OAuth on, driven in process on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.asgi import running
from tests.conftest import make_settings
from tests.oauth.flow import PASSWORD
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.services import accounts

SECRET = "an-oauth-test-secret-of-at-least-32-bytes"
PUBLIC_URL = "http://127.0.0.1:5000"
RESOURCE = f"{PUBLIC_URL}/mcp"


def oauth_settings(database_url: str, **overrides: Any) -> Settings:
    return make_settings(database_url, jwt_secret=SECRET, public_url=PUBLIC_URL, **overrides)


@dataclass
class OAuthApp:
    app: Starlette
    http: httpx.AsyncClient
    db: Database
    settings: Settings

    async def account(self, email: str, password: str = PASSWORD) -> str:
        async with self.db.transaction() as session:
            user = await accounts.sign_up(session, email=email, password=password)
        return user.id


@pytest.fixture
async def oauth(db: Database, database_url: str) -> AsyncIterator[OAuthApp]:
    settings = oauth_settings(database_url)
    app = build_http_app(settings, db, host="127.0.0.1", dispose_on_shutdown=False)
    async with running(app) as client:
        client.base_url = httpx.URL(PUBLIC_URL)
        yield OAuthApp(app, client, db, settings)
