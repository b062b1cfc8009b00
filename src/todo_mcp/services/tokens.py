"""Bearer tokens: the JWTs that bind an HTTP request to one user."""

from __future__ import annotations

import time
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


class TokenService:
    """Issues HS* tokens with the shared secret and verifies tokens of the configured algorithm."""

    def __init__(self, settings: Settings) -> None:
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
        self._verified: dict[str, tuple[str, float]] = {}

    @property
    def can_issue(self) -> bool:
        return self._signing_key is not None

    def issue(self, user_id: str, ttl: timedelta = DEFAULT_TTL) -> str:
        if self._signing_key is None:
            raise InvalidInput("Issuing tokens needs JWT_SECRET and an HS256/HS384/HS512 JWT_ALGORITHM.")
        if not timedelta(0) < ttl <= MAX_TTL:
            raise InvalidInput(f"A token's lifetime must be between 1 second and {MAX_TTL.days} days.")
        now = utcnow()
        claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl}
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        return jwt.encode(claims, self._signing_key, algorithm=self._algorithm)

    async def verify_async(self, token: str) -> str:
        """`verify`, off the event loop when it may fetch keys over the network."""
        if (subject := self._remembered(token)) is not None:
            return subject
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

    def _remembered(self, token: str) -> str | None:
        entry = self._verified.get(token)
        if entry is None or time.time() >= entry[1]:
            return None
        return entry[0]

    def verify(self, token: str) -> str:
        """Return the token's subject (the user id), or raise `Unauthenticated` saying why."""
        if (subject := self._remembered(token)) is not None:
            return subject
        subject, expires_at = self._check(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (subject, min(expires_at, time.time() + VERIFIED_CACHE_SECONDS))
        return subject

    def _check(self, token: str) -> tuple[str, float]:
        """The subject, and when the token stops being valid (epoch seconds)."""
        key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
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
        return subject, float(claims["exp"]) + self._leeway
