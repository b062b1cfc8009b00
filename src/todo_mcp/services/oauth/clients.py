"""OAuth clients: what may be registered, how redirect URIs match, and the stored records.

A client is registered dynamically (RFC 7591) or known by its metadata document (the
`client_id` is an HTTPS URL, `client_documents.py`). Either way the record is a row of
`oauth_clients`; a registered client's secret is derived, never stored (`keys.ClientSecrets`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from mcp.shared.auth import InvalidRedirectUriError, OAuthClientInformationFull
from pydantic import AnyUrl
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from todo_mcp.config import is_loopback
from todo_mcp.db.models import NAME_MAX, OAuthClient
from todo_mcp.db.types import utcnow
from todo_mcp.services.oauth.keys import ClientSecrets

MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_LENGTH = 2000
# Schemes a browser must never be sent to with a code in the URL, and http off this machine.
REFUSED_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob", "ws", "wss", "ftp"})
# Scopes: one for the tasks; offline_access is accepted because some clients ask for it to get
# a refresh token (every grant here has one anyway).
TASKS_SCOPE = "tasks"
OFFLINE_ACCESS = "offline_access"
VALID_SCOPES = [TASKS_SCOPE, OFFLINE_ACCESS]
DEFAULT_SCOPES = [TASKS_SCOPE]


class RedirectUriRefused(ValueError):
    pass


def _loopback_http(parts: Any) -> bool:
    return parts.scheme == "http" and parts.hostname is not None and is_loopback(parts.hostname)


def check_redirect_uri(uri: str) -> None:
    """Raise `RedirectUriRefused` unless a client may register `uri` (RFC 8252, OAuth 2.1)."""
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise RedirectUriRefused(f"a redirect URI is longer than {MAX_REDIRECT_URI_LENGTH} characters")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        raise RedirectUriRefused(f"redirect URI {uri!r} is not absolute")
    if parts.fragment or "#" in uri:
        raise RedirectUriRefused(f"redirect URI {uri!r} has a fragment, which OAuth forbids")
    if scheme in REFUSED_SCHEMES:
        raise RedirectUriRefused(f"redirect URI {uri!r} uses the {scheme}: scheme, which is not allowed")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise RedirectUriRefused(f"redirect URI {uri!r} has no host")
        if parts.username or parts.password:
            raise RedirectUriRefused(f"redirect URI {uri!r} carries credentials")
        if scheme == "http" and not is_loopback(parts.hostname):
            raise RedirectUriRefused(
                f"redirect URI {uri!r} is plain http off this machine; use https "
                "(or http://127.0.0.1 for an app on the user's computer)"
            )
    # Any other scheme is an app's own (cursor://..., vscode://...): RFC 8252 7.1.


def check_redirect_uris(uris: list[str]) -> None:
    if not uris:
        raise RedirectUriRefused("at least one redirect URI is needed")
    if len(uris) > MAX_REDIRECT_URIS:
        raise RedirectUriRefused(f"at most {MAX_REDIRECT_URIS} redirect URIs may be registered")
    for uri in uris:
        check_redirect_uri(uri)


def redirect_matches(registered: str, requested: str) -> bool:
    """Exact match, except that a loopback http URI matches on any port (RFC 8252 7.3): desktop
    apps such as VS Code and Claude Code listen on whichever port is free."""
    if registered == requested:
        return True
    a, b = urlsplit(registered), urlsplit(requested)
    return (
        _loopback_http(a)
        and _loopback_http(b)
        and a.hostname == b.hostname
        and (a.path or "/") == (b.path or "/")
        and a.query == b.query
        and not b.fragment
    )


class RegisteredClient(OAuthClientInformationFull):
    """The SDK's client record, with RFC 8252's loopback rule for redirect URIs."""

    from_document: bool = False

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        if redirect_uri is None:
            return super().validate_redirect_uri(None)
        requested = str(redirect_uri)
        for registered in self.redirect_uris or []:
            if redirect_matches(str(registered), requested):
                return redirect_uri
        raise InvalidRedirectUriError(f"Redirect URI '{requested}' is not registered for this client")

    def validate_scope(self, requested_scope: str | None) -> list[str] | None:
        """The SDK's check, except that offline_access is always allowed: some clients add it to
        ask for a refresh token (MCP's SDK does when the server lists it), and every grant here
        has one. Asked for alone, it comes with the tasks scope, the only access there is."""
        if requested_scope is None:
            return None
        scopes = requested_scope.split()
        others = [scope for scope in scopes if scope != OFFLINE_ACCESS]
        if others:
            super().validate_scope(" ".join(others))
            return scopes
        return [TASKS_SCOPE, *scopes]

    @property
    def display_name(self) -> str:
        name = (self.client_name or "").strip()
        return name[:80] if name else "An unnamed app"


def client_record(row: OAuthClient, secrets: ClientSecrets) -> RegisteredClient:
    record = RegisteredClient.model_validate({**row.client_metadata, "client_id": row.id})
    record.from_document = row.from_document
    if row.secret_salt is not None:
        record.client_secret = secrets.secret_for(row.id, row.secret_salt)
    return record


def stored_metadata(client: OAuthClientInformationFull) -> dict[str, Any]:
    """What is kept of a client: everything RFC 7591 describes but its id and secret."""
    return client.model_dump(
        mode="json", exclude={"client_id", "client_secret", "from_document"}, exclude_none=True
    )


async def register_client(
    session: AsyncSession, client: OAuthClientInformationFull, secrets: ClientSecrets
) -> str | None:
    """Store a dynamically registered client; return the secret it is to be given, if any."""
    public = client.token_endpoint_auth_method == "none"  # noqa: S105 - a method's name
    salt = None if public else ClientSecrets.new_salt()
    session.add(
        OAuthClient(
            id=client.client_id,
            name=(client.client_name or None) and client.client_name[:NAME_MAX],
            client_metadata=stored_metadata(client),
            secret_salt=salt,
            from_document=False,
        )
    )
    await session.flush()
    return secrets.secret_for(client.client_id, salt) if salt is not None else None


async def find_client(session: AsyncSession, client_id: str) -> OAuthClient | None:
    return (await session.exec(select(OAuthClient).where(col(OAuthClient.id) == client_id))).first()


async def store_document_client(
    session: AsyncSession, client: OAuthClientInformationFull, refresh_after: datetime
) -> None:
    """Insert or refresh the cached record of a client known by its metadata document."""
    row = await find_client(session, client.client_id)
    if row is None:
        row = OAuthClient(id=client.client_id, client_metadata={}, from_document=True)
    row.name = (client.client_name or None) and client.client_name[:NAME_MAX]
    row.client_metadata = stored_metadata(client)
    row.refresh_after = refresh_after
    row.last_used_at = utcnow()
    session.add(row)
    await session.flush()
