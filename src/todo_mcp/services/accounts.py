"""Accounts with passwords: sign-up, and log-in that slows down repeated failures.

Passwords are hashed with Argon2 (argon2-cffi's defaults, RFC 9106's low-memory profile) on a
worker thread, since one hash takes tens of milliseconds of CPU. A password is never stored,
logged or returned.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from todo_mcp.db.models import User
from todo_mcp.db.types import utcnow
from todo_mcp.services.dates import check_timezone
from todo_mcp.services.errors import DomainError, InvalidInput, TooManyAttempts, Unauthenticated
from todo_mcp.services.users import create_user
from todo_mcp.services.validation import clean_email, storable_text

PASSWORD_MIN = 8
PASSWORD_MAX = 256
# After this many failures in a row an account waits before the next try; each further failure
# doubles the wait, up to LOCK_MAX. A success resets the count.
FREE_FAILURES = 5
LOCK_BASE = timedelta(seconds=30)
LOCK_MAX = timedelta(minutes=15)

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both answers take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class LoginOutcome:
    """A log-in's result. A refusal is returned, not raised, so that the failure count it
    recorded is committed before the caller raises `refusal`."""

    user: User | None
    refusal: DomainError | None = None


def check_password(password: str) -> str:
    storable_text(password, "password", control_characters=True)
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long.")
    return password


def new_user_id() -> str:
    return secrets.token_urlsafe(16)


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def _password_matches(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return False

    matches = await anyio.to_thread.run_sync(verify)
    return matches and password_hash is not None


async def sign_up(
    session: AsyncSession, *, email: str, password: str, name: str | None = None, timezone: str | None = None
) -> User:
    clean_email(email)
    if timezone is not None:
        check_timezone(timezone)
    password_hash = await hash_password(check_password(password))
    return await create_user(
        session, user_id=new_user_id(), email=email, name=name, password_hash=password_hash, timezone=timezone
    )


def _lock_for(failures: int) -> timedelta:
    doublings = min(failures - FREE_FAILURES, 20)
    return min(LOCK_BASE * (1 << doublings), LOCK_MAX)


def _retry_after(until: datetime, now: datetime) -> int:
    return max(1, int((until - now).total_seconds() + 0.999))


async def log_in(session: AsyncSession, *, email: str, password: str) -> LoginOutcome:
    # Text that is not Unicode (lone surrogates) cannot be hashed, so it can match no password.
    storable_text(password, "password", control_characters=True)
    wrong = Unauthenticated("The email or password is incorrect.")
    try:
        email = clean_email(email)
    except InvalidInput:
        return LoginOutcome(user=None, refusal=wrong)
    now = utcnow()
    # FOR UPDATE: concurrent failures for one account count one by one (a no-op on SQLite,
    # whose writers are serialised anyway).
    user = (await session.exec(select(User).where(col(User.email) == email).with_for_update())).first()
    if user is not None and user.login_locked_until is not None and user.login_locked_until > now:
        return LoginOutcome(
            user=None,
            refusal=TooManyAttempts(_retry_after(user.login_locked_until, now)),
        )
    if not await _password_matches(user.password_hash if user else None, password):
        if user is not None:
            user.failed_logins += 1
            if user.failed_logins >= FREE_FAILURES:
                user.login_locked_until = now + _lock_for(user.failed_logins)
            await session.flush()
        return LoginOutcome(user=None, refusal=wrong)
    assert user is not None
    if user.failed_logins or user.login_locked_until:
        user.failed_logins = 0
        user.login_locked_until = None
        await session.flush()
    return LoginOutcome(user=user)
