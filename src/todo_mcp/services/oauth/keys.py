"""Keys derived from JWT_SECRET, one per purpose, and the one-way hashes of stored secrets.

Codes and refresh tokens are random 256-bit strings, so a plain SHA-256 is enough to store them:
a database leak does not reveal a usable one. Client secrets are never stored at all: each is an
HMAC of the client id and a stored salt under a key only the servers hold, so the MCP SDK's
client authentication (which compares the secret itself) can check them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def derive_key(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), b"todo-mcp/" + purpose.encode(), hashlib.sha256).digest()


def new_token() -> str:
    """A code or refresh token: 256 random bits (RFC 6749 10.10 asks for at least 128)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mac(key: bytes, *parts: str) -> str:
    message = "\0".join(parts).encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode().rstrip("=")


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class ClientSecrets:
    """Client secrets as a function of the client id and a salt: nothing secret is stored."""

    def __init__(self, jwt_secret: str) -> None:
        self._key = derive_key(jwt_secret, "client-secret")

    @staticmethod
    def new_salt() -> str:
        return secrets.token_urlsafe(24)

    def secret_for(self, client_id: str, salt: str) -> str:
        return mac(self._key, client_id, salt)
