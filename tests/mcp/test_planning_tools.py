"""The planning arguments through the five tools, on both protocol eras and both databases:
what the descriptions promise a model."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clock import at
from tests.conftest import UserFactory
from tests.mcp.conftest import connect
from todo_mcp.db.engine import Database
from todo_mcp.services import users

pytestmark = pytest.mark.anyio

CLOCK = at("2026-12-01T22:00:00Z")  # Tuesday evening in UTC; Wednesday in Kiritimati


async def test_a_model_adds_dates_labels_and_pages_without_date_arithmetic(
    db: Database, user_factory: UserFactory, mode: str
) -> None:
    user = await user_factory()
    async with db.transaction() as session:
        await users.update_profile(session, user_id=user, timezone="Pacific/Kiritimati")
    async with connect(db, mode=mode, clock=CLOCK) as tools:
        dentist = await tools.call(
            "add_task",
            {"user_id": user, "title": "Call the dentist", "due": "tomorrow 09:00", "priority": "high"},
        )
        assert (
            dentist["message"] == f"Task {dentist['data']['task_id']} 'Call the dentist' was added, "
            "due tomorrow (2026-12-03) at 09:00."
        )
        assert dentist["data"]["due_label"] == "tomorrow"
        for n in range(4):
            await tools.ok(
                "add_task", {"user_id": user, "title": f"Chore {n}", "labels": ["home"], "due": "today"}
            )

        first = await tools.ok("list_tasks", {"user_id": user, "labels": ["HOME"], "limit": 3, "sort": "due"})
        assert (first["count"], first["total"], first["today"], first["timezone"]) == (
            3,
            4,
            "2026-12-02",
            "Pacific/Kiritimati",
        )
        assert all(task["due_label"] == "today" for task in first["tasks"])
        page_one = await tools.call(
            "list_tasks", {"user_id": user, "labels": ["HOME"], "limit": 3, "sort": "due"}
        )
        assert page_one["message"] == "Showing 3 of 4 tasks labelled HOME; pass next_cursor for more."
        second = await tools.ok(
            "list_tasks",
            {"user_id": user, "labels": ["HOME"], "limit": 3, "sort": "due", "cursor": first["next_cursor"]},
        )
        assert [task["title"] for task in second["tasks"]] == ["Chore 3"]
        assert second["next_cursor"] is None

        overdue = await tools.call("list_tasks", {"user_id": user, "due": "overdue"})
        assert overdue["message"] == "There are no tasks that are overdue."


async def test_retries_are_deduplicated_and_update_reopens(
    db: Database, user_factory: UserFactory, mode: str
) -> None:
    user = await user_factory()
    async with connect(db, mode=mode, clock=CLOCK) as tools:
        arguments = {"user_id": user, "title": "Pay rent", "client_request_id": "4d9a2c"}
        first = await tools.ok("add_task", arguments)
        retry = await tools.call("add_task", arguments)
        assert "deduplicated" not in first
        assert retry["data"] == {**first, "deduplicated": True}
        assert "nothing new was written" in retry["message"]

        await tools.ok("complete_task", {"user_id": user, "task_id": first["task_id"]})
        reopened = await tools.ok(
            "update_task", {"user_id": user, "task_id": first["task_id"], "completed": False}
        )
        assert reopened["updated_fields"] == ["completed"]
        assert (reopened["task"]["completed"], reopened["task"]["completed_at"]) == (False, None)
        assert (await tools.ok("list_tasks", {"user_id": user}))["total"] == 1


BAD_ARGUMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("add_task", {"due": "someday"}, "due"),
    ("add_task", {"due": 5}, "due"),
    ("add_task", {"priority": "urgent"}, "priority"),
    ("add_task", {"labels": "work"}, "labels"),
    ("add_task", {"labels": ["x" * 41]}, "labels"),
    ("add_task", {"labels": [str(n) for n in range(11)]}, "labels"),
    ("add_task", {"client_request_id": "x" * 65}, "client_request_id"),
    ("add_task", {"client_request_id": ""}, "client_request_id"),
    ("list_tasks", {"due": "yesterday"}, "due"),
    ("list_tasks", {"due_from": "the past"}, "due_from"),
    ("list_tasks", {"due_to": "2026-02-30"}, "due_to"),
    ("list_tasks", {"priority": ["urgent"]}, "priority"),
    ("list_tasks", {"labels": [5]}, "labels"),
    ("list_tasks", {"query": "q" * 201}, "query"),
    ("list_tasks", {"sort": "alphabetical"}, "sort"),
    ("list_tasks", {"order": "up"}, "order"),
    ("list_tasks", {"limit": 0}, "limit"),
    ("list_tasks", {"limit": 101}, "limit"),
    ("list_tasks", {"cursor": "forged.cursor"}, "cursor"),
    ("update_task", {"due": "whenever"}, "due"),
    ("update_task", {"priority": "top"}, "priority"),
    ("update_task", {"labels": ["ok", ""]}, "labels"),
    ("update_task", {"completed": "maybe"}, "completed"),
]


@pytest.mark.parametrize(("tool", "arguments", "named"), BAD_ARGUMENTS, ids=lambda v: str(v)[:40])
async def test_bad_input_for_every_new_argument_is_a_400_naming_it_and_writes_nothing(
    db: Database, user_factory: UserFactory, tool: str, arguments: dict[str, Any], named: str
) -> None:
    user = await user_factory()
    async with connect(db, clock=CLOCK) as tools:
        task = await tools.ok("add_task", {"user_id": user, "title": "Keep me"})
        base: dict[str, Any] = {"user_id": user}
        if tool == "add_task":
            base["title"] = "New"
        if tool == "update_task":
            base["task_id"] = task["task_id"]
        refused = await tools.call(tool, {**base, **arguments})
        assert refused["data"] == {"error_code": 400}, refused
        assert named in refused["message"]
        assert (await tools.ok("list_tasks", {"user_id": user}))["tasks"] == [task]
