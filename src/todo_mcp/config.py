"""Settings, read from the environment (and a `.env` file) and validated once at start-up.

Every value has a working default for a first local run; the checks that depend on how the
process is started (the listen address, stdio or HTTP) live in `check_http_exposure`.
"""

from __future__ import annotations

import ipaddress
import logging
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./todo.db"
# HS256 secrets shorter than the hash output make brute-forcing a captured token practical.
MIN_SECRET_BYTES = 32
SECRET_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105

log = logging.getLogger(__name__)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigError(ValueError):
    """The configuration cannot work; the message says what to change."""


def normalise_database_url(url: str) -> str:
    """Pick the async driver for the URL's database, so users may paste a plain URL."""
    url = url.strip()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(
        "DATABASE_URL must be a PostgreSQL URL (postgresql://user:pass@host/db) "
        "or a SQLite URL (sqlite:///path/to/file.db)"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_public_url(url: str) -> str:
    """An origin (scheme, host, optional port), HTTPS unless on loopback; without a trailing slash,
    since OAuth compares issuers as exact strings."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"PUBLIC_URL must be an http(s) origin such as https://todo.example.com, not {url!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(
            f"PUBLIC_URL must be an origin only (scheme, host and port), without a path: {url!r}"
        )
    if parts.scheme != "https" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"PUBLIC_URL must be HTTPS except on this machine (127.0.0.1, localhost): {url!r}; "
            "terminate TLS at your proxy and give its https:// address"
        )
    try:
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise ConfigError(f"PUBLIC_URL has an invalid port: {url!r}") from None
    return f"{parts.scheme}://{parts.netloc.lower()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, validate_by_name=True)

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = DEFAULT_SQLITE_URL
    database_echo: bool = Field(default=False, description="Log every SQL statement (noisy).")
    # Connections kept open per process. Past the pool, SQLAlchemy opens "overflow" connections
    # and closes each one as soon as it is returned: under sustained load that is a new
    # connection per call (a pool of 10 with overflow cost a third of the throughput at 64
    # clients). So by default a call waits for a pooled connection instead, up to the timeout.
    database_pool_size: int = Field(default=20, ge=1, le=200)
    database_max_overflow: int = Field(default=0, ge=0, le=200)
    database_pool_timeout: float = Field(default=10.0, gt=0)
    # Connections left unused this long are closed, all but the most recently used few: when
    # the processes' pools add up to more than the server's max_connections, a process that
    # had a burst must not keep the slots the others need once the burst is over.
    database_pool_idle_seconds: float = Field(default=5.0, gt=0, le=3600)
    database_pool_min_idle: int = Field(default=2, ge=0, le=200)
    # Opening a connection gives up after this long (asyncpg waits 60 s by default): a server
    # that does not answer is a 503 within seconds, not a hung request.
    database_connect_timeout: float = Field(default=5.0, gt=0, le=120)
    # A pooler in transaction mode between us and PostgreSQL (PgBouncer pool_mode=transaction,
    # Neon's pooled endpoint, Supabase's pooler) hands each transaction whichever server
    # connection is free, so statements the driver prepared on one are missing on the next:
    # with this on, the driver prepares nothing it keeps, and names what it prepares uniquely.
    database_transaction_pooler: bool = False

    jwt_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("JWT_SECRET", "BETTER_AUTH_SECRET")
    )
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA"] = "HS256"
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key, for RS256/ES256/EdDSA tokens."
    )
    jwt_jwks_url: str | None = Field(
        default=None, description="JWKS endpoint with the public keys of RS256/ES256/EdDSA tokens."
    )
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=600)

    mcp_server_host: str = "127.0.0.1"
    mcp_server_port: int = Field(default=5000, ge=1, le=65535)
    # Host and Origin values accepted behind a proxy; empty means loopback only.
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = []
    mcp_allowed_origins: Annotated[list[str], NoDecode] = []
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # Browser origins allowed to call the REST API, e.g. a web front end on http://localhost:3000.
    api_cors_origins: Annotated[list[str], NoDecode] = []
    access_token_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 24 * 3600)

    # OAuth for remote MCP clients (services/oauth, oauth/): on when PUBLIC_URL is set. It is the
    # origin people and clients reach, behind any proxy: the issuer, and `PUBLIC_URL/mcp` the
    # resource its access tokens are for.
    public_url: str | None = None
    oauth_access_token_ttl_seconds: int = Field(default=3600, ge=5, le=24 * 3600)
    oauth_refresh_token_ttl_days: int = Field(default=30, ge=1, le=365)
    # Dynamic client registrations per client address a minute (Claude registers on every connect).
    oauth_registrations_per_minute: int = Field(default=20, ge=1, le=10_000)
    # Hosts whose client metadata documents may be fetched although they resolve to loopback or
    # private addresses (an internal network's client); every other such fetch is refused.
    oauth_client_metadata_allowed_hosts: Annotated[list[str], NoDecode] = []
    # Shared-secret tokens without an `aud` claim (from `todo-mcp token`, or a web app signing
    # with JWT_SECRET) keep working at /mcp, as before OAuth; false accepts only OAuth tokens there.
    mcp_accept_tokens_without_audience: bool = True

    # Per-user tool calls a second (off when unset), with room for a burst; shared by every
    # process through Redis with REDIS_URL, per process without it.
    tool_calls_per_second: float | None = Field(default=None, gt=0, le=100_000)
    tool_calls_burst: int | None = Field(default=None, ge=1, le=100_000)
    redis_url: str | None = None

    # GET /metrics asks for this bearer token; without one it is open in development mode only.
    metrics_token: SecretStr | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # The MCP SDK opens an OpenTelemetry span around every message. With no tracer provider
    # installed the span records nothing but still costs ~10% of a tool call's CPU, so it is
    # off unless asked for (for example when running under opentelemetry-instrument).
    mcp_tracing: bool = False

    # The assistant (POST /api/{user_id}/chat). No CHAT_MODEL: the built-in offline model.
    chat_model: str | None = Field(
        default=None,
        description="Model name at an OpenAI-compatible endpoint, e.g. gpt-4.1-mini or llama3.1.",
    )
    chat_base_url: str | None = Field(
        default=None, description="An OpenAI-compatible API, e.g. http://localhost:11434/v1 (Ollama)."
    )
    chat_api_key: SecretStr | None = None
    # Where the assistant's agent reaches the tools; empty: this process's own MCP server.
    chat_mcp_url: str | None = None
    chat_timeout_seconds: float = Field(default=60.0, gt=0, le=900, description="For a whole reply.")
    chat_model_timeout_seconds: float = Field(
        default=30.0, gt=0, le=900, description="For one model request."
    )
    chat_tool_timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="For one tool call.")
    chat_max_turns: int = Field(default=10, ge=1, le=100, description="Model calls in one reply, at most.")
    chat_history_messages: int = Field(default=40, ge=0, le=1000)
    chat_history_characters: int = Field(default=16_000, ge=0, le=1_000_000)
    # The Agents SDK sends traces to OpenAI when on; off unless asked for.
    chat_tracing: bool = False

    @field_validator(
        "mcp_allowed_hosts",
        "mcp_allowed_origins",
        "api_cors_origins",
        "oauth_client_metadata_allowed_hosts",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("chat_model", "chat_base_url", "chat_mcp_url", mode="after")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("chat_base_url", "chat_mcp_url", mode="after")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ConfigError("CHAT_BASE_URL and CHAT_MCP_URL must be http:// or https:// URLs")
        return value

    @field_validator("public_url", mode="after")
    @classmethod
    def _public_origin(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_public_url(value.strip())

    @field_validator("database_url", mode="after")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        asymmetric = not self.jwt_algorithm.startswith("HS")
        if asymmetric and not (self.jwt_public_key or self.jwt_jwks_url):
            raise ConfigError(
                f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PUBLIC_KEY (a PEM key) or JWT_JWKS_URL"
            )
        if (self.jwt_jwks_url or self.jwt_public_key) and not asymmetric:
            raise ConfigError(
                "JWT_JWKS_URL and JWT_PUBLIC_KEY need an asymmetric JWT_ALGORITHM such as RS256 or EdDSA"
            )
        if self.chat_base_url and not self.chat_model:
            raise ConfigError("CHAT_BASE_URL is set but CHAT_MODEL is not: name the model to use there")
        if self.public_url is not None and (secret is None or asymmetric):
            raise ConfigError(
                "PUBLIC_URL turns on OAuth log-in, which signs its tokens with JWT_SECRET: set "
                f"JWT_SECRET with an HS256/HS384/HS512 JWT_ALGORITHM ({SECRET_HINT})"
            )
        if self.environment is Environment.PRODUCTION:
            if not self.auth_enabled:
                raise ConfigError(
                    "ENVIRONMENT=production refuses to start without JWT_SECRET "
                    f"(or JWT_PUBLIC_KEY / JWT_JWKS_URL); {SECRET_HINT}"
                )
            if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes in production; {SECRET_HINT}"
                )
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.jwt_secret is not None or self.jwt_public_key is not None or self.jwt_jwks_url is not None

    @property
    def oauth_enabled(self) -> bool:
        return self.public_url is not None

    @property
    def mcp_resource_url(self) -> str | None:
        """The resource OAuth access tokens are for (RFC 8707, their `aud`)."""
        return f"{self.public_url}/mcp" if self.public_url is not None else None

    @property
    def rest_audience(self) -> str | None:
        """The `aud` of REST log-in tokens once OAuth is on, so /mcp can tell them apart."""
        return f"{self.public_url}/api" if self.public_url is not None else None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def database_url_for_logs(self) -> str:
        """The URL without its password, for start-up messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    def check_http_exposure(self, host: str) -> None:
        """Refuse to serve without tokens anywhere but on this machine."""
        if not self.auth_enabled and not is_loopback(host):
            raise ConfigError(
                f"refusing to listen on {host} without authentication: set JWT_SECRET "
                f"({SECRET_HINT}), or listen on 127.0.0.1"
            )

    def weak_secret_warning(self) -> str | None:
        if (
            self.jwt_secret is not None
            and len(self.jwt_secret.get_secret_value().encode()) < MIN_SECRET_BYTES
        ):
            return (
                f"JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes; "
                f"production would refuse it ({SECRET_HINT})"
            )
        return None
