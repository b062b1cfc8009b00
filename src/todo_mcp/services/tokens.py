"""Bearer tokens: the JWTs that bind an HTTP request to one user."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import timedelta

import anyio.to_thread
import jwt

from todo_mcp.config import Settings
from todo_mcp.db.types import utcnow
from todo_mcp.services.errors import InvalidInput, KeysUnavailable, Unauthenticated

DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(days=30)
# An agent sends the same token with every call. Checking its signature again each time cost
# about a twentieth of a tool call, so a verified token is remembered until it expires, and
# at most this long, so that a key taken out of the JWKS stops working soon after.
VERIFIED_CACHE_SECONDS = 60
VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a verified token says. `grant_id` is set only for OAuth access tokens of this door's
    resource: those stay valid only while their grant is (the door checks it)."""

    subject: str
    expires_at: float
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    grant_id: int | None = None


class TokenService:
    """Issues HS* tokens with the shared secret and verifies tokens of the configured algorithm.

    `audience` is this door's own: the MCP resource URL for /mcp, the REST audience for the API
    (both only when OAuth is on). A token with an `aud` claim is accepted only if it names that
    audience or JWT_AUDIENCE; one without, only if JWT_AUDIENCE is unset and `audienceless` allows.
    """

    def __init__(self, settings: Settings, *, audience: str | None = None, audienceless: bool = True) -> None:
        self._algorithm = settings.jwt_algorithm
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._signing_key = secret if self._algorithm.startswith("HS") else None
        self._verifying_key = secret if self._algorithm.startswith("HS") else settings.jwt_public_key
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300, timeout=5)
            if settings.jwt_jwks_url
            else None
        )
        self._door_audience = audience
        self._audienceless = audienceless and self._audience is None
        self._verified: dict[str, VerifiedToken] = {}

    @property
    def can_issue(self) -> bool:
        return self._signing_key is not None

    def issue(
        self,
        user_id: str,
        ttl: timedelta = DEFAULT_TTL,
        *,
        audience: str | None = None,
        claims: dict[str, object] | None = None,
    ) -> str:
        if self._signing_key is None:
            raise InvalidInput("Issuing tokens needs JWT_SECRET and an HS256/HS384/HS512 JWT_ALGORITHM.")
        if not timedelta(0) < ttl <= MAX_TTL:
            raise InvalidInput(f"A token's lifetime must be between 1 second and {MAX_TTL.days} days.")
        now = utcnow()
        payload: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
        if self._issuer:
            payload["iss"] = self._issuer
        if audience or self._audience:
            payload["aud"] = audience or self._audience
        payload.update(claims or {})
        return jwt.encode(payload, self._signing_key, algorithm=self._algorithm)

    async def verify_async(self, token: str) -> VerifiedToken:
        """`verify`, off the event loop when it may fetch keys over the network."""
        if (verified := self._remembered(token)) is not None:
            return verified
        if self._jwks is None:
            return self.verify(token)
        return await anyio.to_thread.run_sync(self.verify, token)

    def _key_for(self, token: str) -> str | jwt.PyJWK:
        if self._jwks is not None:
            try:
                return self._jwks.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientConnectionError as exc:
                raise KeysUnavailable() from exc
            except (jwt.PyJWKClientError, jwt.DecodeError):
                raise Unauthenticated("The token's signing key is not one this server trusts.") from None
        if self._verifying_key is None:
            raise Unauthenticated("This server has no key to verify tokens with.")
        return self._verifying_key

    def _remembered(self, token: str) -> VerifiedToken | None:
        entry = self._verified.get(token)
        if entry is None or time.time() >= entry.expires_at:
            return None
        return entry

    def verify(self, token: str) -> VerifiedToken:
        """What the token says, or `Unauthenticated` saying why it is not accepted here."""
        if (verified := self._remembered(token)) is not None:
            return verified
        verified = self._check(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        remembered_until = min(verified.expires_at, time.time() + VERIFIED_CACHE_SECONDS)
        self._verified[token] = dataclasses.replace(verified, expires_at=remembered_until)
        return verified

    def _check(self, token: str) -> VerifiedToken:
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                # The audience is checked below, against this door's as well as JWT_AUDIENCE.
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The token has expired; get a new one.") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("The token's signature is invalid.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"The token has no '{exc.claim}' claim.") from None
        except jwt.PyJWTError:
            raise Unauthenticated("The token is malformed or not valid for this server.") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("The token's subject must be a user id.")
        expires_at = float(claims["exp"]) + self._leeway
        raw_audience = claims.get("aud")
        audiences = [raw_audience] if isinstance(raw_audience, str) else list(raw_audience or [])
        if not audiences:
            if self._audience is not None:
                raise Unauthenticated("The token has no 'aud' claim.")
            if not self._audienceless:
                raise Unauthenticated(
                    "The token has no audience; this server accepts only tokens issued for it."
                )
            return VerifiedToken(subject=subject, expires_at=expires_at)
        if self._audience is not None and self._audience in audiences:
            return VerifiedToken(subject=subject, expires_at=expires_at)
        if self._audience is None and self._door_audience is None:
            # Without OAuth and JWT_AUDIENCE nothing here is audience-bound, as before OAuth.
            return VerifiedToken(subject=subject, expires_at=expires_at)
        if self._door_audience is None or self._door_audience not in audiences:
            raise Unauthenticated(
                "The token is not valid for this server: it was issued for another audience."
            )
        grant_id = claims.get("gid")
        scope = claims.get("scope")
        client_id = claims.get("client_id")
        return VerifiedToken(
            subject=subject,
            expires_at=expires_at,
            client_id=client_id if isinstance(client_id, str) else None,
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            grant_id=grant_id if isinstance(grant_id, int) and not isinstance(grant_id, bool) else None,
        )
