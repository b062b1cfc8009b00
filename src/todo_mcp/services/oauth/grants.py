"""Codes, grants and refresh tokens: the life of one connection between a client and a user.

A grant is a connection (what `/connections` lists) and the family of its refresh tokens. Codes
are single use and ten minutes long; a code presented again revokes the grant the first use made
(RFC 6749 4.1.2). Refresh tokens are rotated on every use; an old one presented again means it
leaked, so the whole family is revoked (OAuth 2.1 4.3.1). Only SHA-256 hashes are stored.
Access tokens are JWTs bound to the grant (`gid`): revoking the grant stops them too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy import delete, exists, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from todo_mcp.db.models import OAuthClient, OAuthCode, OAuthGrant, OAuthRefreshToken
from todo_mcp.services.errors import DomainError, NotFound
from todo_mcp.services.oauth.keys import new_token, token_hash
from todo_mcp.services.tokens import TokenService

log = logging.getLogger(__name__)

CODE_LIFETIME = timedelta(minutes=10)
# Registrations nobody logged in with, and revoked grants, are kept this long, then removed.
UNUSED_CLIENT_LIFETIME = timedelta(days=7)
REVOKED_GRANT_KEPT = timedelta(days=1)


class InvalidGrant(DomainError):
    """RFC 6749's invalid_grant: the code or refresh token is unknown, used, expired or revoked."""

    code = 400


@dataclass(frozen=True, slots=True)
class GrantPolicy:
    issuer: str
    resource: str
    access_ttl: timedelta
    refresh_ttl: timedelta


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    scopes: list[str]
    grant_id: int


@dataclass(frozen=True, slots=True)
class Connection:
    """A grant as its user sees it."""

    id: int
    client_id: str
    client_name: str | None
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime


async def create_code(
    session: AsyncSession,
    *,
    client_id: str,
    user_id: str,
    redirect_uri: str,
    redirect_uri_explicit: bool,
    code_challenge: str,
    scopes: list[str],
    resource: str,
    now: datetime,
) -> str:
    code = new_token()
    session.add(
        OAuthCode(
            code_hash=token_hash(code),
            client_id=client_id,
            user_id=user_id,
            redirect_uri=redirect_uri,
            redirect_uri_explicit=redirect_uri_explicit,
            code_challenge=code_challenge,
            scopes=" ".join(scopes),
            resource=resource,
            expires_at=now + CODE_LIFETIME,
        )
    )
    await session.flush()
    return code


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lookup(Generic[T]):
    """What a code or refresh token found: the live row, or nothing; and the grant it revoked
    when it was presented again after use (so the caller can forget it at once)."""

    found: T | None
    revoked_grant: int | None = None


async def find_code(session: AsyncSession, client_id: str, code: str, now: datetime) -> Lookup[OAuthCode]:
    """The unused code of this client. A used one revokes what its first use granted."""
    row = (await session.exec(select(OAuthCode).where(col(OAuthCode.code_hash) == token_hash(code)))).first()
    if row is None or row.client_id != client_id:
        return Lookup(None)
    if row.used_at is not None:
        if row.grant_id is None:
            return Lookup(None)
        log.warning("authorization code of client %s used twice: grant %d revoked", client_id, row.grant_id)
        await revoke_grant(session, row.grant_id, now)
        return Lookup(None, revoked_grant=row.grant_id)
    return Lookup(row)


async def _issue(
    session: AsyncSession,
    grant: OAuthGrant,
    scopes: list[str],
    policy: GrantPolicy,
    tokens: TokenService,
    now: datetime,
) -> IssuedTokens:
    assert grant.id is not None
    refresh = new_token()
    session.add(
        OAuthRefreshToken(
            token_hash=token_hash(refresh),
            grant_id=grant.id,
            created_at=now,
            expires_at=now + policy.refresh_ttl,
        )
    )
    grant.last_used_at = now
    grant.expires_at = now + policy.refresh_ttl
    session.add(grant)
    await session.flush()
    access = tokens.issue(
        grant.user_id,
        policy.access_ttl,
        audience=policy.resource,
        claims={
            "iss": policy.issuer,
            "client_id": grant.client_id,
            "scope": " ".join(scopes),
            "gid": grant.id,
        },
    )
    return IssuedTokens(
        access_token=access,
        expires_in=int(policy.access_ttl.total_seconds()),
        refresh_token=refresh,
        scopes=scopes,
        grant_id=grant.id,
    )


async def redeem_code(
    session: AsyncSession, code: OAuthCode, policy: GrantPolicy, tokens: TokenService, now: datetime
) -> IssuedTokens:
    """Mark the code used (once: concurrent exchanges of one code see it used) and grant.
    Raises `InvalidGrant` when another exchange took it first."""
    taken = await session.exec(
        update(OAuthCode)
        .where(col(OAuthCode.code_hash) == code.code_hash)
        .where(col(OAuthCode.used_at).is_(None))
        .where(col(OAuthCode.expires_at) > now)
        .values(used_at=now)
    )
    if taken.rowcount != 1:
        raise InvalidGrant("The authorization code was already used or has expired.")
    grant = OAuthGrant(
        user_id=code.user_id,
        client_id=code.client_id,
        scopes=code.scopes,
        resource=code.resource,
        created_at=now,
        last_used_at=now,
        expires_at=now + policy.refresh_ttl,
    )
    session.add(grant)
    await session.flush()
    await session.exec(
        update(OAuthCode).where(col(OAuthCode.code_hash) == code.code_hash).values(grant_id=grant.id)
    )
    await session.exec(
        update(OAuthClient).where(col(OAuthClient.id) == code.client_id).values(last_used_at=now)
    )
    return await _issue(session, grant, code.scopes.split(), policy, tokens, now)


async def find_refresh(
    session: AsyncSession, client_id: str, token: str, now: datetime
) -> Lookup[tuple[OAuthRefreshToken, OAuthGrant]]:
    """The live refresh token of this client and its grant. An old one revokes the family."""
    found = (
        await session.exec(
            select(OAuthRefreshToken, OAuthGrant)
            .join(OAuthGrant, col(OAuthGrant.id) == col(OAuthRefreshToken.grant_id))
            .where(col(OAuthRefreshToken.token_hash) == token_hash(token))
        )
    ).first()
    if found is None:
        return Lookup(None)
    refresh, grant = found
    if grant.client_id != client_id or grant.revoked_at is not None:
        return Lookup(None)
    if refresh.used_at is not None:
        log.warning(
            "refresh token of grant %d (client %s) used again after rotation: grant revoked",
            grant.id,
            client_id,
        )
        assert grant.id is not None
        await revoke_grant(session, grant.id, now)
        return Lookup(None, revoked_grant=grant.id)
    if refresh.expires_at <= now:
        return Lookup(None)
    return Lookup((refresh, grant))


async def find_refresh_grant(session: AsyncSession, client_id: str, refresh_hash: str) -> int | None:
    """The grant of a refresh token of this client, whatever its state (for revocation)."""
    return (
        await session.exec(
            select(OAuthGrant.id)
            .join(OAuthRefreshToken, col(OAuthGrant.id) == col(OAuthRefreshToken.grant_id))
            .where(col(OAuthRefreshToken.token_hash) == refresh_hash)
            .where(col(OAuthGrant.client_id) == client_id)
        )
    ).first()


async def rotate_refresh(
    session: AsyncSession,
    refresh_hash: str,
    grant_id: int,
    scopes: list[str],
    policy: GrantPolicy,
    tokens: TokenService,
    now: datetime,
) -> IssuedTokens | None:
    """Mark the refresh token used (once) and issue the next of its family; None when it was
    used meanwhile, which revokes the family (returned, not raised, so the revocation commits)."""
    taken = await session.exec(
        update(OAuthRefreshToken)
        .where(col(OAuthRefreshToken.token_hash) == refresh_hash)
        .where(col(OAuthRefreshToken.used_at).is_(None))
        .values(used_at=now)
    )
    grant = (
        await session.exec(
            select(OAuthGrant)
            .where(col(OAuthGrant.id) == grant_id)
            .where(col(OAuthGrant.revoked_at).is_(None))
        )
    ).first()
    if taken.rowcount != 1 or grant is None:
        # Two requests with one token at once: the one that lost is a reuse.
        await revoke_grant(session, grant_id, now)
        return None
    return await _issue(session, grant, scopes, policy, tokens, now)


async def revoke_grant(session: AsyncSession, grant_id: int, now: datetime) -> None:
    await session.exec(
        update(OAuthGrant)
        .where(col(OAuthGrant.id) == grant_id)
        .where(col(OAuthGrant.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    # Nothing of a revoked family can be exchanged again; the rows go with the clean-up.
    await session.exec(
        update(OAuthRefreshToken)
        .where(col(OAuthRefreshToken.grant_id) == grant_id)
        .where(col(OAuthRefreshToken.used_at).is_(None))
        .values(used_at=now)
    )


async def grant_is_active(session: AsyncSession, grant_id: int) -> bool:
    row = (
        await session.exec(
            select(OAuthGrant.id)
            .where(col(OAuthGrant.id) == grant_id)
            .where(col(OAuthGrant.revoked_at).is_(None))
        )
    ).first()
    return row is not None


async def list_connections(session: AsyncSession, user_id: str, now: datetime) -> list[Connection]:
    rows = await session.exec(
        select(OAuthGrant, OAuthClient.name)
        .join(OAuthClient, col(OAuthClient.id) == col(OAuthGrant.client_id))
        .where(col(OAuthGrant.user_id) == user_id)
        .where(col(OAuthGrant.revoked_at).is_(None))
        .where(col(OAuthGrant.expires_at) > now)
        .order_by(col(OAuthGrant.last_used_at).desc(), col(OAuthGrant.id).desc())
    )
    return [
        Connection(
            id=grant.id or 0,
            client_id=grant.client_id,
            client_name=name,
            scopes=grant.scopes.split(),
            created_at=grant.created_at,
            last_used_at=grant.last_used_at,
        )
        for grant, name in rows
    ]


async def revoke_connection(session: AsyncSession, user_id: str, grant_id: int, now: datetime) -> None:
    """Revoke one of the user's own connections; another user's is reported as missing."""
    row = (
        await session.exec(
            select(OAuthGrant.id)
            .where(col(OAuthGrant.id) == grant_id)
            .where(col(OAuthGrant.user_id) == user_id)
            .where(col(OAuthGrant.revoked_at).is_(None))
        )
    ).first()
    if row is None:
        raise NotFound(f"Connection {grant_id} was not found for this user.")
    await revoke_grant(session, grant_id, now)


@dataclass(frozen=True, slots=True)
class Removed:
    codes: int
    refresh_tokens: int
    grants: int
    clients: int


async def clean_up(session: AsyncSession, now: datetime) -> Removed:
    """Remove what can never be used again: expired codes and refresh tokens, grants revoked a
    while ago or expired, and registrations that no log-in used (Claude registers on every
    connect, so these pile up)."""
    codes = await session.exec(delete(OAuthCode).where(col(OAuthCode.expires_at) < now))
    refresh = await session.exec(delete(OAuthRefreshToken).where(col(OAuthRefreshToken.expires_at) < now))
    grants = await session.exec(
        delete(OAuthGrant).where(
            (col(OAuthGrant.revoked_at) < now - REVOKED_GRANT_KEPT) | (col(OAuthGrant.expires_at) < now)
        )
    )
    has_grant = exists().where(col(OAuthGrant.client_id) == col(OAuthClient.id))
    clients = await session.exec(
        delete(OAuthClient)
        .where(col(OAuthClient.last_used_at) < now - UNUSED_CLIENT_LIFETIME)
        .where(~has_grant)
    )
    return Removed(codes.rowcount, refresh.rowcount, grants.rowcount, clients.rowcount)
