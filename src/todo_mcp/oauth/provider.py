"""The MCP SDK's `OAuthAuthorizationServerProvider`, on our database and accounts.

The SDK's handlers parse and check the requests (client, redirect URI, scope, PKCE, code expiry,
redirect match); this provider stores and looks things up through `services/oauth`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import urlencode

import anyio
import jwt
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    OAuthAuthorizationServerProvider,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl
from sqlalchemy.exc import IntegrityError

from todo_mcp.config import Settings
from todo_mcp.db.engine import Database
from todo_mcp.db.types import utcnow
from todo_mcp.services.errors import DomainError, Unauthenticated
from todo_mcp.services.oauth import clients, grants
from todo_mcp.services.oauth.client_documents import (
    ClientDocumentRefused,
    ClientDocuments,
    is_document_client_id,
)
from todo_mcp.services.oauth.clients import RedirectUriRefused, RegisteredClient
from todo_mcp.services.oauth.keys import ClientSecrets, derive_key, token_hash
from todo_mcp.services.tokens import TokenService, VerifiedToken

log = logging.getLogger(__name__)
T = TypeVar("T")

LOGIN_PATH = "/oauth/login"
# How long a person has to fill in the login page.
LOGIN_REQUEST_SECONDS = 15 * 60
# An access token's grant is looked up at most this often per process: revoking a connection
# stops its access tokens within this time everywhere (at once in the process that revoked it).
GRANT_CHECK_SECONDS = 5.0


class StoredCode(AuthorizationCode):
    code_hash: str


class StoredRefreshToken(RefreshToken):
    token_hash: str
    grant_id: int


class GrantAccessToken(AccessToken):
    grant_id: int


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """An authorization request the SDK checked, carried signed through the login page, so
    that whichever process gets the form can finish it."""

    client_id: str
    redirect_uri: str
    redirect_uri_explicit: bool
    state: str | None
    scopes: list[str]
    code_challenge: str
    resource: str


class LoginRequests:
    def __init__(self, jwt_secret: str) -> None:
        self._key = derive_key(jwt_secret, "login-request")

    def seal(self, request: LoginRequest) -> str:
        now = int(time.time())
        claims = {
            "cid": request.client_id,
            "ru": request.redirect_uri,
            "rx": request.redirect_uri_explicit,
            "st": request.state,
            "sc": request.scopes,
            "cc": request.code_challenge,
            "rs": request.resource,
            "iat": now,
            "exp": now + LOGIN_REQUEST_SECONDS,
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def open(self, sealed: str) -> LoginRequest | None:
        try:
            claims = jwt.decode(sealed, self._key, algorithms=["HS256"], options={"require": ["exp"]})
            return LoginRequest(
                client_id=str(claims["cid"]),
                redirect_uri=str(claims["ru"]),
                redirect_uri_explicit=bool(claims["rx"]),
                state=None if claims["st"] is None else str(claims["st"]),
                scopes=[str(scope) for scope in claims["sc"]],
                code_challenge=str(claims["cc"]),
                resource=str(claims["rs"]),
            )
        except (jwt.PyJWTError, KeyError, TypeError):
            return None


class ActiveGrants:
    """Whether an access token's grant is still in force, remembered briefly per process."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._checked: dict[int, float] = {}

    async def is_active(self, grant_id: int) -> bool:
        now = time.monotonic()
        if self._checked.get(grant_id, 0.0) > now:
            return True
        async with self._db.transaction() as session:
            active = await grants.grant_is_active(session, grant_id)
        if active:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[grant_id] = now + GRANT_CHECK_SECONDS
        return active

    def forget(self, grant_id: int) -> None:
        self._checked.pop(grant_id, None)


class Provider(OAuthAuthorizationServerProvider[StoredCode, StoredRefreshToken, GrantAccessToken]):
    """todo-mcp as the authorization server of its own MCP resource (no identity-assertion grant:
    the protocol's default refuses it)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        tokens: TokenService,
        active_grants: ActiveGrants,
        documents: ClientDocuments,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        assert settings.public_url is not None
        assert settings.mcp_resource_url is not None
        assert settings.jwt_secret is not None
        secret = settings.jwt_secret.get_secret_value()
        self.issuer = settings.public_url
        self.resource = settings.mcp_resource_url
        self.db = db
        self.tokens = tokens
        self.active_grants = active_grants
        self.documents = documents
        self.secrets = ClientSecrets(secret)
        self.login_requests = LoginRequests(secret)
        self.clock = clock
        self.policy = grants.GrantPolicy(
            issuer=self.issuer,
            resource=self.resource,
            access_ttl=timedelta(seconds=settings.oauth_access_token_ttl_seconds),
            refresh_ttl=timedelta(days=settings.oauth_refresh_token_ttl_days),
        )

    # --- clients ---------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> RegisteredClient | None:
        try:
            return await self.client_or_refusal(client_id)
        except ClientDocumentRefused:
            return None

    async def client_or_refusal(self, client_id: str) -> RegisteredClient | None:
        """The client, None when unknown, or `ClientDocumentRefused` for a metadata document
        that cannot be used (the authorize page says why)."""
        async with self.db.transaction() as session:
            row = await clients.find_client(session, client_id)
            if row is not None and (
                not row.from_document or (row.refresh_after or self.clock()) > self.clock()
            ):
                return clients.client_record(row, self.secrets)
        if not is_document_client_id(client_id):
            return None
        fetched = await self.documents.fetch(client_id)
        refresh_after = self.clock() + timedelta(seconds=fetched.cache_seconds)
        try:
            async with self.db.transaction() as session:
                await clients.store_document_client(session, fetched.client, refresh_after)
        except IntegrityError:
            pass  # Another process stored it at the same moment: the same document.
        log.info("client metadata document %s fetched (cached %d s)", client_id, fetched.cache_seconds)
        record = RegisteredClient.model_validate(fetched.client.model_dump())
        record.from_document = True
        return record

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        try:
            clients.check_redirect_uris([str(uri) for uri in client_info.redirect_uris or []])
        except RedirectUriRefused as err:
            raise RegistrationError("invalid_redirect_uri", str(err)) from None
        async with self.db.transaction() as session:
            secret = await clients.register_client(session, client_info, self.secrets)
        # The SDK's handler answers with this record: the secret it made is replaced by the one
        # derived from the stored salt, which is what authentication later recomputes.
        client_info.client_secret = secret
        log.info(
            "client %s registered (%s, redirect hosts %s)",
            client_info.client_id,
            client_info.client_name or "no name",
            ", ".join(sorted({uri.host or str(uri) for uri in client_info.redirect_uris or []})),
        )

    # --- authorization ---------------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        resource = params.resource or self.resource
        if resource.rstrip("/") != self.resource:
            raise AuthorizeError("invalid_target", f"This server issues tokens only for {self.resource}.")
        sealed = self.login_requests.seal(
            LoginRequest(
                client_id=client.client_id,
                redirect_uri=str(params.redirect_uri),
                redirect_uri_explicit=params.redirect_uri_provided_explicitly,
                state=params.state,
                scopes=params.scopes or (client.scope or clients.TASKS_SCOPE).split(),
                code_challenge=params.code_challenge,
                resource=self.resource,
            )
        )
        return f"{self.issuer}{LOGIN_PATH}?{urlencode({'request': sealed})}"

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> StoredCode | None:
        async with self.db.transaction() as session:
            lookup = await grants.find_code(session, client.client_id, authorization_code, self.clock())
        row = self._seen(lookup)
        if row is None:
            return None
        return StoredCode(
            code=authorization_code,
            code_hash=row.code_hash,
            scopes=row.scopes.split(),
            expires_at=row.expires_at.timestamp(),
            client_id=row.client_id,
            code_challenge=row.code_challenge,
            redirect_uri=AnyUrl(row.redirect_uri),
            redirect_uri_provided_explicitly=row.redirect_uri_explicit,
            resource=row.resource,
            subject=row.user_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: StoredCode
    ) -> OAuthToken:
        try:
            async with self.db.transaction() as session:
                row = (
                    await grants.find_code(session, client.client_id, authorization_code.code, self.clock())
                ).found
                if row is None:
                    raise grants.InvalidGrant("The authorization code was already used or has expired.")
                issued = await grants.redeem_code(session, row, self.policy, self.tokens, self.clock())
        except grants.InvalidGrant as err:
            raise TokenError("invalid_grant", err.message) from None
        log.info("client %s connected for user %s (grant %d)", client.client_id, row.user_id, issued.grant_id)
        return self._token(issued)

    # --- refresh tokens --------------------------------------------------------------------

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> StoredRefreshToken | None:
        async with self.db.transaction() as session:
            lookup = await grants.find_refresh(session, client.client_id, refresh_token, self.clock())
        found = self._seen(lookup)
        if found is None:
            return None
        row, grant = found
        assert grant.id is not None
        return StoredRefreshToken(
            token=refresh_token,
            token_hash=row.token_hash,
            grant_id=grant.id,
            client_id=grant.client_id,
            scopes=grant.scopes.split(),
            expires_at=int(row.expires_at.timestamp()),
            resource=grant.resource,
            subject=grant.user_id,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: StoredRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        async with self.db.transaction() as session:
            issued = await grants.rotate_refresh(
                session,
                refresh_token.token_hash,
                refresh_token.grant_id,
                scopes,
                self.policy,
                self.tokens,
                self.clock(),
            )
        if issued is None:
            self.active_grants.forget(refresh_token.grant_id)
            log.warning("refresh token of grant %d used twice at once: grant revoked", refresh_token.grant_id)
            raise TokenError(
                "invalid_grant", "The refresh token was already used; the connection was revoked."
            )
        return self._token(issued)

    # --- access tokens and revocation ------------------------------------------------------

    async def verified_access(self, token: str) -> VerifiedToken | None:
        """An OAuth access token for this resource whose grant is in force, else None."""
        try:
            verified = self.tokens.verify(token)
        except Unauthenticated:
            return None
        if verified.grant_id is None or not await self.active_grants.is_active(verified.grant_id):
            return None
        return verified

    async def load_access_token(self, token: str) -> GrantAccessToken | None:
        verified = await self.verified_access(token)
        if verified is None or verified.grant_id is None or verified.client_id is None:
            return None
        return GrantAccessToken(
            token=token,
            client_id=verified.client_id,
            scopes=list(verified.scopes),
            expires_at=int(verified.expires_at),
            resource=self.resource,
            subject=verified.subject,
            grant_id=verified.grant_id,
        )

    async def revoke_token(self, token: GrantAccessToken | StoredRefreshToken) -> None:
        await self.revoke_grant(token.grant_id, token.client_id)

    async def revoke_grant(self, grant_id: int, client_id: str) -> None:
        async with self.db.transaction() as session:
            await grants.revoke_grant(session, grant_id, self.clock())
        self.active_grants.forget(grant_id)
        log.info("grant %d revoked by client %s", grant_id, client_id)

    async def find_refresh_for_revocation(self, client_id: str, token: str) -> int | None:
        """The grant of a refresh token of this client, used or not (revoking is idempotent)."""
        async with self.db.transaction() as session:
            return await grants.find_refresh_grant(session, client_id, token_hash(token))

    async def clean_up(self) -> None:
        try:
            async with self.db.transaction() as session:
                removed = await grants.clean_up(session, self.clock())
        except DomainError as err:
            log.warning("OAuth clean-up skipped: %s", err.message)
            return
        log.info(
            "OAuth clean-up: removed %d codes, %d refresh tokens, %d grants, %d clients",
            removed.codes,
            removed.refresh_tokens,
            removed.grants,
            removed.clients,
        )

    def _seen(self, lookup: grants.Lookup[T]) -> T | None:
        if lookup.revoked_grant is not None:
            self.active_grants.forget(lookup.revoked_grant)
        return lookup.found

    def _token(self, issued: grants.IssuedTokens) -> OAuthToken:
        return OAuthToken(
            access_token=issued.access_token,
            expires_in=issued.expires_in,
            scope=" ".join(issued.scopes),
            refresh_token=issued.refresh_token,
        )


# Expired codes and refresh tokens, old revoked grants and unused registrations are removed this
# often by every process (the deletes are idempotent, so processes need not agree on who does it).
UPKEEP_SECONDS = 3600.0


@asynccontextmanager
async def oauth_upkeep(provider: Provider | None) -> AsyncIterator[None]:
    """While the app runs: the periodic clean-up; afterwards, the metadata fetcher closed."""
    if provider is None:
        yield
        return

    async def clean_periodically() -> None:
        while True:
            await anyio.sleep(UPKEEP_SECONDS)
            await provider.clean_up()

    async with anyio.create_task_group() as group:
        group.start_soon(clean_periodically)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
            await provider.documents.close()
