"""Accounts over REST: sign-up, log-in for a token, who am I, and the slow-down of failed log-ins.

Every test runs on SQLite and PostgreSQL. Argon2 makes each sign-up and log-in cost tens of
milliseconds, so the tests sign up only the accounts they need.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import jwt
import pytest

from tests.api.conftest import (
    BAD_CREDENTIALS,
    BASE_URL,
    JWT_SECRET,
    assert_client_error,
    assert_unauthenticated,
    bearer,
)
from tests.conftest import UserFactory, make_settings
from todo_mcp.api.app import build_api_app
from todo_mcp.db.engine import Database
from todo_mcp.db.models import User
from todo_mcp.services.accounts import FREE_FAILURES

pytestmark = pytest.mark.anyio

PASSWORD: Final = "correct horse battery"
WRONG_PASSWORD: Final = "incorrect horse battery"


def new_email(prefix: str = "ada") -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.com"


async def sign_up(client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    response = await client.post("/auth/signup", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"email": email, "password": password})


async def stored_user(db: Database, user_id: str) -> User:
    async with db.transaction() as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


# --- sign-up ---------------------------------------------------------------------------------


async def test_signup_returns_the_new_account_without_any_password(
    client: httpx.AsyncClient, db: Database
) -> None:
    email = new_email()

    response = await client.post("/auth/signup", json={"email": email, "password": PASSWORD, "name": "Ada"})

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "email", "name", "timezone", "created_at"}
    assert body["email"] == email
    assert body["name"] == "Ada"
    assert body["timezone"] == "UTC"
    assert isinstance(body["id"], str)
    assert len(body["id"]) >= 16
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset() is not None
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert PASSWORD not in response.text
    assert "argon2" not in response.text
    assert "hash" not in response.text


async def test_signup_stores_an_argon2_hash_and_never_the_password(
    client: httpx.AsyncClient, db: Database
) -> None:
    created = await sign_up(client, new_email())

    user = await stored_user(db, created["id"])

    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


async def test_signup_stores_the_email_in_lower_case(client: httpx.AsyncClient, db: Database) -> None:
    suffix = secrets.token_hex(4)

    created = await sign_up(client, f"  Ada.Lovelace-{suffix}@Example.COM ")

    assert created["email"] == f"ada.lovelace-{suffix}@example.com"
    assert (await stored_user(db, created["id"])).email == created["email"]


async def test_signup_with_a_registered_email_in_another_case_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    email = new_email()
    await sign_up(client, email)

    response = await client.post("/auth/signup", json={"email": email.upper(), "password": PASSWORD})

    assert_client_error(response, 409, "already exists")
    assert response.json()["error_id"] is None


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "ada@", "@example.com", "ada@example", "ada lovelace@example.com", "", "a\x00@b.com"],
)
async def test_signup_with_an_invalid_email_is_rejected_naming_the_email(
    client: httpx.AsyncClient, email: str
) -> None:
    response = await client.post("/auth/signup", json={"email": email, "password": PASSWORD})

    assert_client_error(response, 400, "email")


@pytest.mark.parametrize("password", ["", "seven77", "x" * 257], ids=["empty", "7 chars", "257 chars"])
async def test_signup_with_a_password_of_the_wrong_length_is_rejected_with_the_limits(
    client: httpx.AsyncClient, password: str
) -> None:
    response = await client.post("/auth/signup", json={"email": new_email(), "password": password})

    assert_client_error(response, 400, "password", "8", "256")


@pytest.mark.parametrize("length", [8, 256])
async def test_signup_accepts_passwords_at_both_length_limits(client: httpx.AsyncClient, length: int) -> None:
    response = await client.post("/auth/signup", json={"email": new_email(), "password": "p" * length})

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "body",
    [{}, {"email": "ada@example.com"}, {"password": PASSWORD}, {"email": 7, "password": PASSWORD}],
    ids=["empty", "no password", "no email", "email not a string"],
)
async def test_signup_with_missing_or_mistyped_fields_is_a_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/auth/signup", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_a_rejected_signup_creates_no_account_and_each_account_gets_its_own_id(
    client: httpx.AsyncClient,
) -> None:
    email = new_email()
    other = await sign_up(client, new_email())

    rejected = await client.post("/auth/signup", json={"email": email, "password": "short"})
    accepted = await client.post("/auth/signup", json={"email": email, "password": PASSWORD})

    assert rejected.status_code == 400
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["id"] != other["id"]


# --- log-in ----------------------------------------------------------------------------------


async def test_login_returns_a_bearer_token_with_expiry_and_the_user(client: httpx.AsyncClient) -> None:
    email = new_email()
    created = await sign_up(client, email, name="Ada")

    response = await log_in(client, email, PASSWORD)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["user"] == created
    assert PASSWORD not in response.text


async def test_login_token_is_hs256_with_the_user_as_subject_and_opens_api_me(
    client: httpx.AsyncClient,
) -> None:
    email = new_email()
    created = await sign_up(client, email, name="Ada")

    body = (await log_in(client, email, PASSWORD)).json()
    me = await client.get("/api/me", headers=bearer(body["access_token"]))

    token = body["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == created["id"]
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert abs(claims["exp"] - datetime.now(UTC).timestamp() - body["expires_in"]) < 60
    assert me.status_code == 200, me.text
    assert me.json() == created


async def test_login_accepts_the_email_in_any_case(client: httpx.AsyncClient) -> None:
    email = new_email()
    await sign_up(client, email)

    response = await log_in(client, f"  {email.upper()} ", PASSWORD)

    assert response.status_code == 200, response.text


async def test_wrong_password_and_unknown_email_get_the_same_401(client: httpx.AsyncClient) -> None:
    email = new_email()
    await sign_up(client, email)

    wrong_password = await log_in(client, email, WRONG_PASSWORD)
    unknown_email = await log_in(client, new_email("nobody"), PASSWORD)
    invalid_email = await log_in(client, "not-an-email", PASSWORD)

    for response in (wrong_password, unknown_email, invalid_email):
        assert_unauthenticated(response)
    assert wrong_password.json() == unknown_email.json() == invalid_email.json()
    assert "incorrect" in wrong_password.json()["detail"]


async def test_login_of_an_account_without_a_password_is_refused(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    """Users who sign in through an outside provider have no password; no password opens them."""
    email = new_email("provider")
    await user_factory(email=email)

    response = await log_in(client, email, PASSWORD)

    assert_unauthenticated(response)


async def test_after_five_failures_the_next_login_is_429_with_retry_after_even_with_the_right_password(
    client: httpx.AsyncClient,
) -> None:
    email, other_email = new_email("locked"), new_email("other")
    await sign_up(client, email)
    await sign_up(client, other_email)

    failures = [await log_in(client, email, WRONG_PASSWORD) for _ in range(FREE_FAILURES)]
    locked = await log_in(client, email, PASSWORD)

    assert [response.status_code for response in failures] == [401] * FREE_FAILURES
    assert locked.status_code == 429, locked.text
    retry_after = locked.headers.get("Retry-After")
    assert retry_after is not None
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 30
    assert retry_after in locked.json()["detail"]
    assert "access_token" not in locked.text
    # The lock is the account's, not the client's.
    assert (await log_in(client, other_email, PASSWORD)).status_code == 200


async def test_a_successful_login_before_the_limit_resets_the_failure_count(
    client: httpx.AsyncClient, db: Database
) -> None:
    email = new_email()
    created = await sign_up(client, email)
    for _ in range(FREE_FAILURES - 1):
        assert (await log_in(client, email, WRONG_PASSWORD)).status_code == 401
    assert (await stored_user(db, created["id"])).failed_logins == FREE_FAILURES - 1

    assert (await log_in(client, email, PASSWORD)).status_code == 200

    reset = await stored_user(db, created["id"])
    assert reset.failed_logins == 0
    assert reset.login_locked_until is None
    # Without the reset this would be the fifth failure in a row, and lock the account.
    assert (await log_in(client, email, WRONG_PASSWORD)).status_code == 401
    after = await stored_user(db, created["id"])
    assert after.failed_logins == 1
    assert after.login_locked_until is None


async def test_login_without_a_jwt_secret_is_503_saying_what_to_set(database_url: str, db: Database) -> None:
    app = build_api_app(make_settings(database_url), db, dispose_on_shutdown=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        response = await log_in(client, "ada@example.com", PASSWORD)

    assert response.status_code == 503, response.text
    assert "JWT_SECRET" in response.json()["detail"]
    assert "access_token" not in response.text


@pytest.mark.parametrize("body", [{}, {"email": "ada@example.com"}, {"email": "a@b.co", "password": 1}])
async def test_login_with_missing_or_mistyped_fields_is_a_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/auth/login", json=body)

    assert response.status_code == 422, response.text


# --- /api/me ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(BAD_CREDENTIALS))
async def test_api_me_with_bad_credentials_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, user_factory: UserFactory, kind: str
) -> None:
    user = await user_factory()

    response = await client.get("/api/me", headers=BAD_CREDENTIALS[kind](user))

    assert_unauthenticated(response)


async def test_api_me_names_what_is_wrong_with_an_expired_token(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    user = await user_factory()

    response = await client.get("/api/me", headers=BAD_CREDENTIALS["expired"](user))

    assert_unauthenticated(response)
    assert "expired" in response.json()["detail"]


async def test_api_me_with_a_valid_token_for_an_unknown_user_is_not_found(
    client: httpx.AsyncClient, auth_for: Callable[[str], dict[str, str]]
) -> None:
    response = await client.get("/api/me", headers=auth_for("never-signed-up"))

    assert_client_error(response, 404, "never-signed-up")
