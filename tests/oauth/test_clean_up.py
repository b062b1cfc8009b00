"""The clean-up removes what can never be used again, and nothing that still can."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from tests.conftest import UserFactory
from todo_mcp.db.engine import Database
from todo_mcp.db.models import OAuthClient, OAuthCode, OAuthGrant, OAuthRefreshToken
from todo_mcp.db.types import utcnow
from todo_mcp.services.oauth import grants

pytestmark = pytest.mark.anyio


async def test_clean_up_removes_only_the_dead(db: Database, user_factory: UserFactory) -> None:
    now = utcnow()
    ada = await user_factory("ada")
    long_ago = now - timedelta(days=30)
    async with db.transaction() as session:
        for client_id, last_used in [("live", now), ("abandoned", long_ago), ("old-but-granted", long_ago)]:
            session.add(OAuthClient(id=client_id, client_metadata={}, last_used_at=last_used))
        await session.flush()

        def grant(client_id: str, *, expires: timedelta, revoked: timedelta | None = None) -> OAuthGrant:
            row = OAuthGrant(
                user_id=ada,
                client_id=client_id,
                scopes="tasks",
                resource="http://127.0.0.1:5000/mcp",
                expires_at=now + expires,
                revoked_at=None if revoked is None else now - revoked,
            )
            session.add(row)
            return row

        live = grant("live", expires=timedelta(days=30))
        kept_revoked = grant("live", expires=timedelta(days=30), revoked=timedelta(hours=1))
        gone_revoked = grant("live", expires=timedelta(days=30), revoked=timedelta(days=2))
        gone_expired = grant("live", expires=-timedelta(seconds=1))
        old_granted = grant("old-but-granted", expires=timedelta(days=3))
        await session.flush()
        for token_hash, grant_row, expires in [
            ("a" * 64, live, timedelta(days=1)),
            ("b" * 64, live, -timedelta(seconds=1)),
            ("c" * 64, gone_expired, timedelta(days=1)),
        ]:
            assert grant_row.id is not None
            session.add(
                OAuthRefreshToken(token_hash=token_hash, grant_id=grant_row.id, expires_at=now + expires)
            )
        for code_hash, expires in [("d" * 64, timedelta(minutes=5)), ("e" * 64, -timedelta(seconds=1))]:
            session.add(
                OAuthCode(
                    code_hash=code_hash,
                    client_id="live",
                    user_id=ada,
                    redirect_uri="http://127.0.0.1/cb",
                    redirect_uri_explicit=True,
                    code_challenge="x",
                    scopes="tasks",
                    resource="http://127.0.0.1:5000/mcp",
                    expires_at=now + expires,
                )
            )

    async with db.transaction() as session:
        removed = await grants.clean_up(session, now)
    assert (removed.codes, removed.refresh_tokens, removed.grants, removed.clients) == (1, 1, 2, 1)

    async with db.transaction() as session:
        clients = set((await session.exec(select(OAuthClient.id))).all())
        grant_ids = set((await session.exec(select(OAuthGrant.id))).all())
        tokens = set((await session.exec(select(OAuthRefreshToken.token_hash))).all())
        codes = set(
            (await session.exec(select(OAuthCode.code_hash).where(col(OAuthCode.client_id) == "live"))).all()
        )
    assert clients == {"live", "old-but-granted"}
    assert grant_ids == {live.id, kept_revoked.id, old_granted.id}
    assert gone_revoked.id not in grant_ids
    assert tokens == {"a" * 64}  # the expired one, and the one of the expired grant, are gone
    assert codes == {"d" * 64}
