"""Settings: URL normalisation and the checks that refuse an unsafe configuration at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.conftest import make_settings
from todo_mcp.config import (
    DEFAULT_SQLITE_URL,
    MIN_SECRET_BYTES,
    ConfigError,
    Environment,
    Settings,
    normalise_database_url,
)

SQLITE = "sqlite:///unused.db"
STRONG_SECRET = "k" * MIN_SECRET_BYTES
# The addresses that mean "every interface", which is exactly what these tests are about.
ALL_IPV4 = "0.0.0.0"  # noqa: S104
ALL_IPV6 = "::"
PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nnot checked at start-up\n-----END PUBLIC KEY-----"


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        (
            "postgresql://ada:pw@db.example.com:5432/todo",
            "postgresql+asyncpg://ada:pw@db.example.com:5432/todo",
        ),
        ("postgres://ada:pw@db.example.com/todo", "postgresql+asyncpg://ada:pw@db.example.com/todo"),
        (
            "postgresql://ada:pw@ep-x.neon.tech/todo?sslmode=require",
            "postgresql+asyncpg://ada:pw@ep-x.neon.tech/todo?sslmode=require",
        ),
        ("postgresql+asyncpg://ada@localhost/todo", "postgresql+asyncpg://ada@localhost/todo"),
        ("sqlite:///./todo.db", "sqlite+aiosqlite:///./todo.db"),
        ("sqlite:////var/lib/todo/todo.db", "sqlite+aiosqlite:////var/lib/todo/todo.db"),
        ("sqlite+aiosqlite:///todo.db", "sqlite+aiosqlite:///todo.db"),
        ("  postgresql://ada@localhost/todo \n", "postgresql+asyncpg://ada@localhost/todo"),
    ],
)
def test_database_url_gets_the_async_driver_of_its_database(given: str, normalised: str) -> None:
    assert normalise_database_url(given) == normalised


@pytest.mark.parametrize(
    "url",
    [
        "mysql://ada@localhost/todo",
        "postgresql+psycopg2://ada@localhost/todo",
        "sqlite+pysqlite:///todo.db",
        "todo.db",
        "",
        "http://localhost:5432/todo",
    ],
)
def test_database_url_of_another_kind_is_refused_with_an_example(url: str) -> None:
    with pytest.raises(ConfigError, match=r"DATABASE_URL must be a PostgreSQL URL \(postgresql://"):
        normalise_database_url(url)


def test_settings_normalise_the_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://ada@db.example.com/todo")

    assert Settings(_env_file=None).database_url == "postgresql+asyncpg://ada@db.example.com/todo"


def test_settings_refuse_an_unsupported_database_url() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL must be"):
        make_settings("mysql://ada@localhost/todo")


def test_settings_without_configuration_use_embedded_sqlite_in_development() -> None:
    settings = Settings(_env_file=None)

    assert settings.database_url == DEFAULT_SQLITE_URL
    assert settings.is_sqlite is True
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.auth_enabled is False
    assert settings.database_echo is False


def test_database_url_for_logs_hides_the_password() -> None:
    settings = make_settings("postgresql://ada:hunter2-secret@db.example.com/todo")

    assert "hunter2-secret" not in settings.database_url_for_logs
    assert settings.database_url_for_logs == "postgresql+asyncpg://ada:***@db.example.com/todo"


# --- production refuses to start unsafe ---------------------------------------------------------


def test_production_without_jwt_secret_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")

    with pytest.raises(ValidationError, match="ENVIRONMENT=production refuses to start without JWT_SECRET"):
        Settings(_env_file=None)


def test_production_with_a_short_secret_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match=f"at least {MIN_SECRET_BYTES} bytes in production"):
        make_settings(SQLITE, environment="production", jwt_secret="k" * (MIN_SECRET_BYTES - 1))


def test_production_counts_the_secret_in_bytes_not_characters() -> None:
    # 16 two-byte characters are 32 bytes: long enough.
    settings = make_settings(SQLITE, environment="production", jwt_secret="é" * 16)

    assert settings.auth_enabled is True


def test_production_with_a_strong_secret_starts() -> None:
    settings = make_settings(SQLITE, environment="production", jwt_secret=STRONG_SECRET)

    assert settings.environment is Environment.PRODUCTION
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == STRONG_SECRET
    assert settings.weak_secret_warning() is None


def test_production_with_a_public_key_and_no_secret_starts() -> None:
    settings = make_settings(
        SQLITE, environment="production", jwt_algorithm="RS256", jwt_public_key=PUBLIC_KEY
    )

    assert settings.auth_enabled is True


def test_short_secret_in_development_starts_with_a_warning() -> None:
    settings = make_settings(SQLITE, jwt_secret="short")

    warning = settings.weak_secret_warning()
    assert warning is not None
    assert f"shorter than {MIN_SECRET_BYTES} bytes" in warning


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_asymmetric_algorithm_without_a_public_key_refuses_to_start(algorithm: str) -> None:
    with pytest.raises(ValidationError, match=f"JWT_ALGORITHM={algorithm} needs JWT_PUBLIC_KEY"):
        make_settings(SQLITE, jwt_algorithm=algorithm, jwt_secret=STRONG_SECRET)


def test_secret_is_not_shown_in_the_settings_repr() -> None:
    settings = make_settings(SQLITE, jwt_secret=STRONG_SECRET)

    assert STRONG_SECRET not in repr(settings)
    assert STRONG_SECRET not in str(settings.model_dump())


# --- the secret's two names ---------------------------------------------------------------------


def test_better_auth_secret_is_accepted_as_the_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_AUTH_SECRET", STRONG_SECRET)
    monkeypatch.setenv("ENVIRONMENT", "production")

    settings = Settings(_env_file=None)

    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == STRONG_SECRET
    assert settings.auth_enabled is True


def test_jwt_secret_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", STRONG_SECRET)

    settings = Settings(_env_file=None)

    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == STRONG_SECRET


def test_jwt_secret_wins_when_both_names_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "j" * MIN_SECRET_BYTES)
    monkeypatch.setenv("BETTER_AUTH_SECRET", "b" * MIN_SECRET_BYTES)

    settings = Settings(_env_file=None)

    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == "j" * MIN_SECRET_BYTES


def test_short_better_auth_secret_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETTER_AUTH_SECRET", "short")
    monkeypatch.setenv("ENVIRONMENT", "production")

    with pytest.raises(ValidationError, match="JWT_SECRET must be at least"):
        Settings(_env_file=None)


def test_allowed_hosts_are_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_ALLOWED_HOSTS", " todo.example.com, ,api.example.com ")

    assert Settings(_env_file=None).mcp_allowed_hosts == ["todo.example.com", "api.example.com"]


# --- listening without authentication ------------------------------------------------------------


@pytest.mark.parametrize(
    "host", [ALL_IPV4, ALL_IPV6, "192.168.1.10", "10.0.0.1", "example.com", "localhost.example.com", ""]
)
def test_listening_beyond_loopback_without_auth_is_refused(host: str) -> None:
    settings = make_settings(SQLITE)

    with pytest.raises(ConfigError, match=f"refusing to listen on {host} without authentication"):
        settings.check_http_exposure(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_listening_on_loopback_without_auth_is_allowed(host: str) -> None:
    make_settings(SQLITE).check_http_exposure(host)


@pytest.mark.parametrize("host", [ALL_IPV4, ALL_IPV6, "192.168.1.10"])
def test_listening_anywhere_with_auth_is_allowed(host: str) -> None:
    make_settings(SQLITE, jwt_secret=STRONG_SECRET).check_http_exposure(host)


OAUTH_SECRET = "x" * 40


@pytest.mark.parametrize(
    ("given", "public_url"),
    [
        ("https://todo.example.com", "https://todo.example.com"),
        ("https://todo.example.com/", "https://todo.example.com"),
        ("https://Todo.Example.com:8443", "https://todo.example.com:8443"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://localhost:5000/", "http://localhost:5000"),
        ("http://[::1]:5000", "http://[::1]:5000"),
    ],
)
def test_public_url_is_an_origin_without_a_trailing_slash(given: str, public_url: str) -> None:
    settings = make_settings("sqlite://", jwt_secret=OAUTH_SECRET, public_url=given)
    assert settings.public_url == public_url
    assert settings.oauth_enabled
    assert settings.mcp_resource_url == f"{public_url}/mcp"


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("http://todo.example.com", "must be HTTPS except on this machine"),
        ("https://todo.example.com/todo", "without a path"),
        ("https://todo.example.com/?x=1", "without a path"),
        ("https://user:pw@todo.example.com", "without a path"),
        ("ftp://todo.example.com", r"http\(s\) origin"),
        ("todo.example.com", r"http\(s\) origin"),
        ("https://todo.example.com:99999", "invalid port"),
    ],
)
def test_a_public_url_that_cannot_be_the_issuer_refuses_to_start(given: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        make_settings("sqlite://", jwt_secret=OAUTH_SECRET, public_url=given)


def test_oauth_needs_a_shared_secret_to_sign_its_tokens() -> None:
    with pytest.raises(ValidationError, match="PUBLIC_URL turns on OAuth"):
        make_settings("sqlite://", public_url="https://todo.example.com")


def test_without_public_url_oauth_is_off() -> None:
    settings = make_settings("sqlite://", jwt_secret=OAUTH_SECRET)
    assert not settings.oauth_enabled
    assert settings.mcp_resource_url is None
    assert settings.rest_audience is None
