"""The login and consent page in a real headless Chromium (Debian's, driven by playwright-core):
it renders on a phone without JavaScript, logs in, says a wrong password is wrong without saying
whether the email exists, and Deny returns access_denied. Screenshots land in .artifacts/browser/."""

from __future__ import annotations

import http.server
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import anyio
import httpx
import pytest

from tests.oauth import flow
from tests.oauth.js import JS, chromium, node_with_packages
from tests.oauth.servers import Server, oauth_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / ".artifacts")) / "browser"


@pytest.fixture(scope="module")
def driver() -> tuple[str, Path]:
    """Node with playwright-core, and Debian's Chromium."""
    return node_with_packages(), chromium()


class _App(http.server.BaseHTTPRequestHandler):
    """The app the browser returns to: answers any page with a line of text."""

    def do_GET(self) -> None:
        body = b"back in the app"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def redirect_uri() -> Iterator[str]:
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{app.server_address[1]}/callback"
    finally:
        app.shutdown()
        app.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with oauth_server(f"sqlite:///{tmp_path / 'todo.db'}", tmp_path) as running:
        yield running


def _authorize_url(server: Server, client_id: str, redirect_uri: str, state: str) -> str:
    _, challenge = flow.pkce()
    query = flow.authorize_query(client_id, redirect_uri, challenge, state)
    return f"{server.public_url}/authorize?{urlencode(query)}"


async def test_the_login_page_in_a_real_browser(
    server: Server, driver: tuple[str, Path], redirect_uri: str
) -> None:
    node, browser = driver
    email = f"browser-{secrets.token_hex(4)}@example.com"
    async with httpx.AsyncClient(base_url=server.public_url, timeout=10) as http:
        await flow.sign_up(http, server.api_url, email)
        client = await flow.register(http, redirect_uri=redirect_uri, name="Browser Test App")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    request = {
        "chromium": str(browser),
        "javascript": False,  # the page needs none
        "artifacts": str(ARTIFACTS),
        "redirectPrefix": redirect_uri,
        "email": email,
        "unknownEmail": f"nobody-{secrets.token_hex(4)}@example.com",
        "password": flow.PASSWORD,
        "urls": {
            name: _authorize_url(server, client.client_id, redirect_uri, name)
            for name in ("wrongPassword", "allow", "deny")
        },
    }
    run = await anyio.run_process([node, str(JS / "login_page.mjs"), json.dumps(request)], check=False)
    assert run.returncode == 0, run.stderr.decode(errors="replace") + server.process.log()
    seen = json.loads(run.stdout.decode().strip().splitlines()[-1])

    assert seen["status"] == 200
    assert seen["heading"] == "Connect Browser Test App to todo-mcp"
    assert "Browser Test App" in seen["title"]
    assert seen["scrollWidth"] <= 390, "the page scrolls sideways on a phone"
    assert seen["stylesheetApplied"] not in ("", "rgba(0, 0, 0, 0)"), "the stylesheet did not load"
    assert seen["wrongPasswordError"] == "The email or password is incorrect."
    assert seen["unknownEmailError"] == seen["wrongPasswordError"]
    assert "/oauth/login" in seen["wrongPasswordUrl"]

    allowed = flow.query_of(seen["allowUrl"])
    assert seen["allowUrl"].startswith(redirect_uri)
    assert allowed["state"] == "allow"
    assert allowed["iss"] == server.public_url
    assert allowed["code"]

    denied = flow.query_of(seen["denyUrl"])
    assert denied["error"] == "access_denied"
    assert denied["state"] == "deny"
    assert denied["iss"] == server.public_url
    assert "code" not in denied
    for name in ("login-page-phone.png", "login-page-wrong-password.png", "login-page-desktop.png"):
        assert (ARTIFACTS / name).stat().st_size > 1000, name
