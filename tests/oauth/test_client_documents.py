"""Client ID Metadata Documents fetched for real over HTTPS from a server on 127.0.0.1, and the
guard against making the server fetch from loopback and private addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.asgi import running
from tests.oauth import flow
from tests.oauth.conftest import PUBLIC_URL, OAuthApp, oauth_settings
from tests.tls import DocumentServer, https_server, make_ca
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.services.oauth.client_documents import address_is_public

pytestmark = pytest.mark.anyio

REDIRECT = "http://127.0.0.1:43123/callback"


@pytest.fixture
def documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DocumentServer]:
    ca = make_ca(tmp_path)
    # The server trusts the system's store, which SSL_CERT_FILE replaces here with the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    with https_server(ca) as server:
        yield server


async def _app(db: Database, database_url: str, allowed: list[str]) -> AsyncIterator[OAuthApp]:
    settings = oauth_settings(database_url, oauth_client_metadata_allowed_hosts=allowed)
    app = build_http_app(settings, db, host="127.0.0.1", dispose_on_shutdown=False)
    async with running(app) as client:
        client.base_url = httpx.URL(PUBLIC_URL)
        yield OAuthApp(app, client, db, settings)


@pytest.fixture
async def trusting(documents: DocumentServer, db: Database, database_url: str) -> AsyncIterator[OAuthApp]:
    """OAuth with localhost allowed as a metadata host (an internal network's client); made
    after `documents`, so that its TLS context trusts the test CA."""
    async for app in _app(db, database_url, ["localhost"]):
        yield app


@pytest.fixture
async def guarded(documents: DocumentServer, db: Database, database_url: str) -> AsyncIterator[OAuthApp]:
    """OAuth as deployed: no host exempt from the address guard."""
    async for app in _app(db, database_url, []):
        yield app


async def _authorize(app: OAuthApp, client_id: str) -> httpx.Response:
    _, challenge = flow.pkce()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
    }
    return await app.http.get("/authorize", params=query)


def _document(url: str, **changes: object) -> dict[str, object]:
    return {
        "client_id": url,
        "client_name": "Document Client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **changes,
    }


async def test_a_client_known_by_its_document_logs_in_without_registering(
    trusting: OAuthApp, documents: DocumentServer
) -> None:
    url = documents.url("/oauth/client.json")
    documents.documents["/oauth/client.json"] = _document(url)
    user_id = await trusting.account("ada@example.com")
    client = flow.Registered(client_id=url, client_secret=None, redirect_uri=REDIRECT)
    verifier, challenge = flow.pkce()
    page = await flow.open_login_page(trusting.http, url, REDIRECT, challenge, "st")
    assert "Document Client" in page.text
    assert "metadata document at localhost" in page.text
    answer = await flow.submit(
        trusting.http, page, email="ada@example.com", password=flow.PASSWORD, action="allow"
    )
    query = flow.query_of(answer.headers["location"])
    authorized = flow.Authorized(query["code"], query["state"], query["iss"], verifier, REDIRECT)
    tokens = await flow.exchange(trusting.http, client, authorized)
    assert tokens.status_code == 200, tokens.text
    listed = await flow.call_tool(
        trusting.http, tokens.json()["access_token"], "list_tasks", {"user_id": user_id}
    )
    assert listed.json()["result"]["structuredContent"]["status"] == "success"
    # Fetched once, then read from the cache for the page, the form and the exchange.
    assert documents.requests == ["/oauth/client.json"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"client_id": "https://localhost/elsewhere.json"}, "client_id is not its own URL"),
        ({"client_secret": "s3cret"}, "must not carry a client secret"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "public client"),
        ({"redirect_uris": ["http://evil.example.com/cb"]}, "plain http off this machine"),
        ({"redirect_uris": []}, "at least one redirect URI"),
    ],
)
async def test_a_document_that_breaks_the_rules_is_refused(
    trusting: OAuthApp, documents: DocumentServer, change: dict[str, object], reason: str
) -> None:
    url = documents.url("/bad.json")
    documents.documents["/bad.json"] = _document(url, **change)
    answer = await _authorize(trusting, url)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_client"
    assert reason in answer.json()["error_description"]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ((302, {"Location": "https://localhost/other.json"}, b""), "redirects"),
        ((200, {"Content-Type": "application/json"}, b"{" + b" " * 20_000 + b"}"), "over 16384 bytes"),
        ((200, {"Content-Type": "application/json"}, b"not json"), "not valid JSON"),
        ((500, {}, b"oops"), "answered 500"),
    ],
)
async def test_a_document_that_cannot_be_read_is_refused(
    trusting: OAuthApp, documents: DocumentServer, entry: tuple[int, dict[str, str], bytes], reason: str
) -> None:
    documents.documents["/odd.json"] = entry
    answer = await _authorize(trusting, documents.url("/odd.json"))
    assert answer.status_code == 400
    assert reason in answer.json()["error_description"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_a_metadata_url_on_loopback_is_never_fetched(
    guarded: OAuthApp, documents: DocumentServer, host: str
) -> None:
    url = documents.url("/client.json", host=host)
    documents.documents["/client.json"] = _document(url)
    answer = await _authorize(guarded, url)
    assert answer.status_code == 400
    assert "loopback or private network" in answer.json()["error_description"]
    assert documents.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://10.1.2.3/client.json",
        "https://192.168.0.10/client.json",
        "https://169.254.169.254/latest/meta-data.json",
        "https://[::1]/client.json",
        "https://[fd00::1]/client.json",
        "https://100.64.0.1/client.json",
    ],
)
async def test_a_metadata_url_on_a_private_address_is_refused_before_connecting(
    guarded: OAuthApp, url: str
) -> None:
    answer = await _authorize(guarded, url)
    assert answer.status_code == 400
    assert "loopback or private network" in answer.json()["error_description"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - an address to refuse, not to bind
        ("fe80::1%eth0", False),
    ],
)
def test_which_addresses_count_as_public(address: str, public: bool) -> None:
    assert address_is_public(address) is public


async def test_a_plain_http_or_rootless_client_id_is_not_fetched(guarded: OAuthApp) -> None:
    for client_id in ("http://example.com/client.json", "https://example.com/", "https://example.com"):
        answer = await _authorize(guarded, client_id)
        assert answer.status_code == 400, client_id
        assert "location" not in answer.headers
