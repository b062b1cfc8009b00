"""Client ID Metadata Documents: a `client_id` that is an HTTPS URL names a JSON document, fetched
from there, checked, and cached (the MCP authorization spec of 2026-07-28).

Fetching a URL a stranger chose is a server-side request forgery risk, so: HTTPS only, the host's
addresses resolved here and every one of them public (no loopback, private, link-local, shared,
reserved or multicast address) unless the host is on an allow list, the connection made to the
address that was checked (no second lookup for DNS rebinding to change), no redirects, a few
seconds and a few kilobytes at most.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
from mcp.shared.auth import OAuthClientInformationFull
from pydantic import ValidationError

from todo_mcp.db.models import CLIENT_ID_MAX
from todo_mcp.services.oauth.clients import (
    DEFAULT_SCOPES,
    VALID_SCOPES,
    RedirectUriRefused,
    check_redirect_uris,
)

log = logging.getLogger(__name__)

FETCH_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 16 * 1024
CACHE_SECONDS_DEFAULT = 3600
CACHE_SECONDS_MIN = 300
CACHE_SECONDS_MAX = 24 * 3600


class ClientDocumentRefused(Exception):
    """The document cannot be used; the message says why (safe to show the person)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def is_document_client_id(client_id: str) -> bool:
    return client_id.startswith("https://")


def check_document_url(url: str) -> None:
    if len(url) > CLIENT_ID_MAX:
        raise ClientDocumentRefused("The client's metadata URL is too long.")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ClientDocumentRefused("A client metadata document must be at an https:// URL.")
    if parts.path in ("", "/") or parts.fragment or parts.username or parts.password:
        raise ClientDocumentRefused("A client metadata URL needs a path and no fragment or credentials.")
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        raise ClientDocumentRefused("A client metadata URL must not have dot segments.")


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses it has checked, looking the name up itself."""

    def __init__(self, allowed_hosts: Iterable[str]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allowed = frozenset(host.lower() for host in allowed_hosts)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise ClientDocumentRefused(f"The client's host {host} could not be found.") from None
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise ClientDocumentRefused(f"The client's host {host} could not be found.")
        if host.lower() not in self._allowed and not all(address_is_public(a) for a in addresses):
            raise ClientDocumentRefused(
                f"The client's host {host} is on a loopback or private network; "
                "its metadata document is not fetched."
            )
        return await self._inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _cache_seconds(cache_control: str | None) -> int:
    seconds = CACHE_SECONDS_DEFAULT
    for directive in (cache_control or "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.strip().isdigit():
            seconds = int(value.strip())
    return max(CACHE_SECONDS_MIN, min(seconds, CACHE_SECONDS_MAX))


def client_from_document(url: str, document: object) -> OAuthClientInformationFull:
    """The client a fetched document describes, or `ClientDocumentRefused` saying what is wrong."""
    if not isinstance(document, dict):
        raise ClientDocumentRefused("The client metadata document is not a JSON object.")
    if document.get("client_id") != url:
        raise ClientDocumentRefused("The client metadata document's client_id is not its own URL.")
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise ClientDocumentRefused("A client metadata document must not carry a client secret.")
    method = document.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise ClientDocumentRefused(
            "A client known by its metadata document is a public client: token_endpoint_auth_method "
            f"must be 'none', not {method!r}."
        )
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
        raise ClientDocumentRefused("The client metadata document needs redirect_uris, a list of URLs.")
    try:
        check_redirect_uris(uris)
    except RedirectUriRefused as err:
        raise ClientDocumentRefused(f"The client metadata document is refused: {err}.") from None
    requested = str(document.get("scope") or "").split()
    scopes = [scope for scope in requested if scope in VALID_SCOPES] or DEFAULT_SCOPES
    try:
        client = OAuthClientInformationFull.model_validate(
            {**document, "token_endpoint_auth_method": "none", "scope": " ".join(scopes)}
        )
    except ValidationError:
        raise ClientDocumentRefused("The client metadata document has invalid fields.") from None
    if "authorization_code" not in client.grant_types or "code" not in client.response_types:
        raise ClientDocumentRefused("The client metadata document must allow the authorization code grant.")
    return client


@dataclass(frozen=True, slots=True)
class FetchedClient:
    client: OAuthClientInformationFull
    cache_seconds: int


class ClientDocuments:
    """Fetches metadata documents through the guard; one connection pool per process."""

    def __init__(self, allowed_hosts: Iterable[str] = (), ssl_context: ssl.SSLContext | None = None) -> None:
        # The system's trust store (SSL_CERT_FILE / SSL_CERT_DIR honoured), not a bundled one.
        context = ssl_context or ssl.create_default_context()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            network_backend=GuardedBackend(allowed_hosts),
            max_connections=20,
            keepalive_expiry=30,
        )

    async def fetch(self, url: str) -> FetchedClient:
        check_document_url(url)
        try:
            with anyio.fail_after(FETCH_SECONDS):
                body, cache_control = await self._get(url)
        except TimeoutError:
            raise ClientDocumentRefused("The client's metadata document took too long to fetch.") from None
        except httpcore.TimeoutException:
            raise ClientDocumentRefused("The client's metadata document took too long to fetch.") from None
        except (httpcore.ConnectError, httpcore.NetworkError, httpcore.ProtocolError, ssl.SSLError) as exc:
            log.warning("client metadata document %s could not be fetched: %s", url, exc)
            raise ClientDocumentRefused("The client's metadata document could not be fetched.") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise ClientDocumentRefused("The client's metadata document is not valid JSON.") from None
        return FetchedClient(client_from_document(url, document), _cache_seconds(cache_control))

    async def _get(self, url: str) -> tuple[bytes, str | None]:
        headers = [(b"Accept", b"application/json"), (b"User-Agent", b"todo-mcp")]
        timeouts = {
            "connect": FETCH_SECONDS,
            "read": FETCH_SECONDS,
            "write": FETCH_SECONDS,
            "pool": FETCH_SECONDS,
        }
        async with self._pool.stream(
            "GET", url, headers=headers, extensions={"timeout": timeouts}
        ) as response:
            if 300 <= response.status < 400:
                raise ClientDocumentRefused(
                    "The client's metadata URL redirects; it must serve the document itself."
                )
            if response.status != 200:
                raise ClientDocumentRefused(
                    f"The client's metadata URL answered {response.status}, not the document."
                )
            body = bytearray()
            async for chunk in response.aiter_stream():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ClientDocumentRefused(
                        f"The client's metadata document is over {MAX_DOCUMENT_BYTES} bytes."
                    )
            values = [v.decode("latin-1") for k, v in response.headers if k.lower() == b"cache-control"]
        return bytes(body), values[0] if values else None

    async def close(self) -> None:
        await self._pool.aclose()
