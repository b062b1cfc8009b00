"""Tasks an assistant can plan with: due dates, priority, labels, completion time, retried adds;
users get a time zone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The list order of sort=due, as the index and the queries both write it (db/models.py).
DUE_ORDER = ("COALESCE(due_date, '9999-12-30')", "COALESCE(due_time, '')")


def search_text(title: str, description: str | None) -> str:
    """As `services.tasks.search_text` computes it for new writes."""
    return f"{title}\n{description or ''}".casefold()


def _rebuilding_tasks() -> Any:
    """`batch_alter_table` for tasks. On SQLite it rebuilds the table: keep AUTOINCREMENT, and
    the sequence, so that the id of a deleted task is still never handed out again."""
    return op.batch_alter_table("tasks", table_kwargs={"sqlite_autoincrement": True})


def _sqlite_sequence() -> int | None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    seq = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'")).scalar()
    return int(seq) if seq is not None else None


def _restore_sqlite_sequence(seq: int | None) -> None:
    if seq is not None:
        op.get_bind().execute(
            sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'tasks' AND seq < :seq"), {"seq": seq}
        )


def upgrade() -> None:
    seq = _sqlite_sequence()
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False))
    with _rebuilding_tasks() as batch:
        batch.add_column(sa.Column("due_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("due_time", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("priority_rank", sa.SmallInteger(), server_default="3", nullable=False))
        batch.add_column(sa.Column("labels", sa.Text(), server_default="[]", nullable=False))
        batch.add_column(sa.Column("search_text", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("client_request_id", sa.String(length=64), nullable=True))
        batch.create_check_constraint(op.f("ck_tasks_priority_rank"), "priority_rank BETWEEN 0 AND 3")
        batch.drop_index("ix_tasks_user_id")
    _restore_sqlite_sequence(seq)
    op.create_index("ix_tasks_user_id_id", "tasks", ["user_id", "id"])
    op.create_index(
        "ix_tasks_due_order",
        "tasks",
        ["user_id", "completed", sa.text(DUE_ORDER[0]), sa.text(DUE_ORDER[1]), "priority_rank", "id"],
        postgresql_include=["due_date", "due_time"],
    )
    op.create_index(
        "uq_tasks_client_request",
        "tasks",
        ["user_id", "client_request_id"],
        unique=True,
        postgresql_where=sa.text("client_request_id IS NOT NULL"),
        sqlite_where=sa.text("client_request_id IS NOT NULL"),
    )
    op.create_table(
        "task_labels",
        sa.Column("task_id", ROW_ID, nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("label_key", sa.String(length=120), nullable=False),
        sa.Column("completed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("due_time", sa.String(length=5), nullable=True),
        sa.Column("priority_rank", sa.SmallInteger(), server_default="3", nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_labels_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_task_labels_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "label_key", name=op.f("pk_task_labels")),
    )
    op.create_index(
        "ix_task_labels_user_id_label_key",
        "task_labels",
        [
            "user_id",
            "label_key",
            "completed",
            sa.text(DUE_ORDER[0]),
            sa.text(DUE_ORDER[1]),
            "priority_rank",
            "task_id",
        ],
        postgresql_include=["due_date", "due_time"],
    )

    # Existing rows: searchable as new ones are, and a completion time for the completed ones
    # (their last change is the best there is).
    bind = op.get_bind()
    tasks = sa.table(
        "tasks",
        sa.column("id", ROW_ID),
        sa.column("title", sa.String()),
        sa.column("description", sa.String()),
        sa.column("search_text", sa.Text()),
    )
    rows = bind.execute(sa.select(tasks.c.id, tasks.c.title, tasks.c.description)).all()
    for task_id, title, description in rows:
        bind.execute(
            tasks.update().where(tasks.c.id == task_id).values(search_text=search_text(title, description))
        )
    op.execute("UPDATE tasks SET completed_at = updated_at WHERE completed")


def downgrade() -> None:
    seq = _sqlite_sequence()
    op.drop_index("ix_task_labels_user_id_label_key", table_name="task_labels")
    op.drop_table("task_labels")
    op.drop_index("uq_tasks_client_request", table_name="tasks")
    op.drop_index("ix_tasks_due_order", table_name="tasks")
    op.drop_index("ix_tasks_user_id_id", table_name="tasks")
    with _rebuilding_tasks() as batch:
        batch.create_index("ix_tasks_user_id", ["user_id"])
        batch.drop_constraint(op.f("ck_tasks_priority_rank"), type_="check")
        for column in (
            "client_request_id",
            "completed_at",
            "search_text",
            "labels",
            "priority_rank",
            "due_time",
            "due_date",
        ):
            batch.drop_column(column)
    _restore_sqlite_sequence(seq)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("timezone")
