"""Accounts: sign up, log in for a token, and who am I."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, status

from todo_mcp.api.deps import CallerDep, DatabaseDep, TokensDep
from todo_mcp.api.schemas import (
    ErrorBody,
    LoginRequest,
    ProfileUpdate,
    SignupRequest,
    TokenResponse,
    UserPublic,
)
from todo_mcp.api.strict_json import StrictJSONRoute
from todo_mcp.services import accounts, users
from todo_mcp.services.errors import Unauthenticated, Unavailable

router = APIRouter(tags=["accounts"], route_class=StrictJSONRoute)


@router.post(
    "/auth/signup",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    responses={
        400: {
            "model": ErrorBody,
            "description": "Invalid email, a password of the wrong length, or an unknown time zone.",
        },
        409: {"model": ErrorBody, "description": "The email is already registered."},
    },
)
async def sign_up(body: SignupRequest, db: DatabaseDep) -> UserPublic:
    async with db.transaction() as session:
        user = await accounts.sign_up(
            session, email=body.email, password=body.password, name=body.name, timezone=body.timezone
        )
    return UserPublic.of(user)


@router.post(
    "/auth/login",
    summary="Exchange email and password for a bearer token",
    responses={
        400: {"model": ErrorBody, "description": "The password is not Unicode text (unpaired surrogates)."},
        401: {"model": ErrorBody, "description": "The email or password is incorrect."},
        429: {"model": ErrorBody, "description": "Too many failures for this account; see Retry-After."},
        503: {"model": ErrorBody, "description": "This server does not issue tokens (no JWT_SECRET)."},
    },
)
async def log_in(body: LoginRequest, request: Request, db: DatabaseDep, tokens: TokensDep) -> TokenResponse:
    if tokens is None or not tokens.can_issue:
        raise Unavailable("This server does not issue tokens: set JWT_SECRET (HS256) to enable log-in.")
    async with db.transaction() as session:
        outcome = await accounts.log_in(session, email=body.email, password=body.password)
    # Raised after the commit, so that the failure it counted is kept.
    if outcome.refusal is not None:
        raise outcome.refusal
    assert outcome.user is not None
    ttl: timedelta = request.app.state.token_ttl
    return TokenResponse(
        # With OAuth on, a log-in token is for this API only: /mcp takes OAuth tokens for itself.
        access_token=tokens.issue(outcome.user.id, ttl, audience=request.app.state.rest_audience),
        expires_in=int(ttl.total_seconds()),
        user=UserPublic.of(outcome.user),
    )


@router.get(
    "/api/me",
    summary="The signed-in user",
    responses={401: {"model": ErrorBody, "description": "No valid token."}},
)
async def me(caller: CallerDep, db: DatabaseDep) -> UserPublic:
    if caller.user_id is None:
        raise Unauthenticated("Development mode has no signed-in user; set JWT_SECRET and log in.")
    async with db.transaction() as session:
        user = await users.get_user(session, user_id=caller.user_id)
    return UserPublic.of(user)


@router.patch(
    "/api/me",
    summary="Change the signed-in user's name or time zone",
    responses={
        400: {
            "model": ErrorBody,
            "description": "An unknown time zone, a name too long, or nothing to change.",
        },
        401: {"model": ErrorBody, "description": "No valid token."},
    },
)
async def update_me(body: ProfileUpdate, caller: CallerDep, db: DatabaseDep) -> UserPublic:
    if caller.user_id is None:
        raise Unauthenticated("Development mode has no signed-in user; set JWT_SECRET and log in.")
    async with db.transaction() as session:
        user = await users.update_profile(
            session, user_id=caller.user_id, name=body.name, timezone=body.timezone
        )
    return UserPublic.of(user)
