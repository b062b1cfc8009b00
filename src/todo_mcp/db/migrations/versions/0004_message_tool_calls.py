"""The assistant: a message keeps the tool calls behind it; history is read newest first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: on SQLite a plain ADD COLUMN, no table rebuild.
    op.add_column("messages", sa.Column("tool_calls", sa.JSON(), nullable=True))
    # The composite index answers "this conversation, newest first" and everything the
    # single-column one did.
    op.create_index("ix_messages_conversation_id_id", "messages", ["conversation_id", "id"])
    op.drop_index("ix_messages_conversation_id", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"])
    op.drop_index("ix_messages_conversation_id_id", table_name="messages")
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("tool_calls")
