"""Every tool's success path through the SDK client, in both protocol eras and on both databases.

`ToolClient.call` (conftest) already checks the envelope contract on each call; the tests here
state each rule once more, on the raw results, so that a broken rule names itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from mcp.types import CallToolResult, TextContent

from tests.conftest import UserFactory
from tests.mcp.conftest import TOOL_NAMES, ToolClient, connect, envelope_problems, page, parse_utc
from todo_mcp.db.engine import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tools(db: Database, mode: str) -> AsyncIterator[ToolClient]:
    """Overrides the conftest client: every test here runs in both protocol modes."""
    async with connect(db, mode=mode) as client:
        yield client


async def call_for_success(tools: ToolClient, user: str, tool: str) -> CallToolResult:
    """A call of `tool` that should succeed, on a user who has one task."""
    task = await tools.ok("add_task", {"user_id": user, "title": "Water the plants"})
    arguments: dict[str, dict[str, Any]] = {
        "add_task": {"user_id": user, "title": "Buy milk", "description": "Two litres"},
        "list_tasks": {"user_id": user},
        "complete_task": {"user_id": user, "task_id": task["task_id"]},
        "delete_task": {"user_id": user, "task_id": task["task_id"]},
        "update_task": {"user_id": user, "task_id": task["task_id"], "title": "Water the garden"},
    }
    return await tools.raw(tool, arguments[tool])


async def call_for_unknown_user(tools: ToolClient, tool: str) -> CallToolResult:
    """A call of `tool` that must fail with 404: its own arguments, for a user who does not exist."""
    arguments: dict[str, Any] = {"user_id": "nobody"} | ({"title": "x"} if tool == "add_task" else {})
    if tool in ("complete_task", "delete_task", "update_task"):
        arguments |= {"task_id": 1} | ({"title": "x"} if tool == "update_task" else {})
    return await tools.raw(tool, arguments)


def text_of(result: CallToolResult) -> str:
    [block] = result.content
    assert isinstance(block, TextContent)
    return block.text


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_success_is_a_success_envelope_with_is_error_false(
    tools: ToolClient, user_factory: UserFactory, tool: str
) -> None:
    result = await call_for_success(tools, await user_factory(), tool)

    assert result.is_error is False
    assert result.structured_content is not None
    assert sorted(result.structured_content) == ["data", "message", "status"]
    assert result.structured_content["status"] == "success"
    assert isinstance(result.structured_content["message"], str)
    assert result.structured_content["message"].strip()


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_text_block_is_the_structured_content_as_json(
    tools: ToolClient, user_factory: UserFactory, tool: str
) -> None:
    ok = await call_for_success(tools, await user_factory(), tool)
    error = await call_for_unknown_user(tools, tool)

    assert json.loads(text_of(ok)) == ok.structured_content
    assert json.loads(text_of(error)) == error.structured_content


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_success_and_error_validate_against_the_advertised_output_schema(
    tools: ToolClient, user_factory: UserFactory, tool: str
) -> None:
    listed = await tools.client.list_tools()
    [schema] = [listed_tool.output_schema for listed_tool in listed.tools if listed_tool.name == tool]
    assert schema is not None
    validator = Draft202012Validator(schema)
    ok = await call_for_success(tools, await user_factory(), tool)
    error = await call_for_unknown_user(tools, tool)

    assert [e.message for e in validator.iter_errors(ok.structured_content)] == []
    assert [e.message for e in validator.iter_errors(error.structured_content)] == []
    assert error.structured_content == {
        "status": "error",
        "data": {"error_code": 404},
        "message": "User 'nobody' was not found; check the user_id.",
    }
    assert error.is_error is True


def test_envelope_check_reports_a_result_that_breaks_the_contract() -> None:
    """The shared check is not vacuous: an error envelope flagged as a success is caught."""
    envelope = {"status": "error", "data": {"error_code": 404}, "message": "Gone."}
    result = CallToolResult(
        content=[TextContent(type="text", text=json.dumps({**envelope, "message": "Other."}))],
        structured_content=envelope,
        is_error=False,
    )
    schema = {"type": "object", "required": ["status", "data", "message", "extra"]}

    assert envelope_problems(result, schema) == [
        "isError is False with status 'error'",
        f"the text block {text_of(result)!r} differs from the structured content",
        "output schema: 'extra' is a required property at []",
    ]


async def test_add_task_returns_the_new_task(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    before = datetime.now(UTC)

    envelope = await tools.call(
        "add_task", {"user_id": user, "title": "  Buy milk  ", "description": "  Two litres "}
    )

    after = datetime.now(UTC)
    data = envelope["data"]
    assert type(data["task_id"]) is int
    assert before <= parse_utc(data["created_at"]) <= after
    # A new task has one timestamp: it was created and last updated at the same instant.
    assert data["updated_at"] == data["created_at"]
    assert envelope == {
        "status": "success",
        "data": {
            "task_id": data["task_id"],
            "title": "Buy milk",
            "description": "Two litres",
            "completed": False,
            "due_date": None,
            "due_time": None,
            "due_label": None,
            "priority": "none",
            "labels": [],
            "completed_at": None,
            "created_at": data["created_at"],
            "updated_at": data["updated_at"],
        },
        "message": f"Task {data['task_id']} 'Buy milk' was added.",
    }


async def test_add_task_without_description_stores_none(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()

    added = await tools.ok("add_task", {"user_id": user, "title": "Call mum"})

    assert added["description"] is None
    assert await tools.tasks_of(user) == [added]


async def test_listed_task_is_exactly_the_task_add_task_returned(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    first = await tools.ok("add_task", {"user_id": user, "title": "One", "description": "first"})
    second = await tools.ok("add_task", {"user_id": user, "title": "Two"})

    assert await tools.call("list_tasks", {"user_id": user}) == {
        "status": "success",
        "data": page([first, second]),
        "message": "Found 2 tasks.",
    }


async def test_task_ids_are_ints_in_every_tool_result(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "Count ids"})
    listed = await tools.ok("list_tasks", {"user_id": user})
    completed = await tools.ok("complete_task", {"user_id": user, "task_id": added["task_id"]})
    updated = await tools.ok("update_task", {"user_id": user, "task_id": added["task_id"], "title": "Ids"})
    deleted = await tools.ok("delete_task", {"user_id": user, "task_id": added["task_id"]})

    ids = [
        added["task_id"],
        listed["tasks"][0]["task_id"],
        completed["task_id"],
        updated["task_id"],
        updated["task"]["task_id"],
        deleted["task_id"],
    ]
    assert [type(task_id) for task_id in ids] == [int] * 6
    assert set(ids) == {added["task_id"]}


async def test_times_are_iso_8601_utc_in_every_task(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "Tick"})
    completed = await tools.ok("complete_task", {"user_id": user, "task_id": added["task_id"]})
    updated = await tools.ok("update_task", {"user_id": user, "task_id": added["task_id"], "title": "Tock"})
    [listed] = await tools.tasks_of(user)

    for task in (added, completed, updated["task"], listed):
        assert parse_utc(task["created_at"]) <= parse_utc(task["updated_at"])
    assert parse_utc(listed["created_at"]) == parse_utc(added["created_at"])
    assert parse_utc(listed["updated_at"]) == parse_utc(updated["task"]["updated_at"])


async def test_complete_task_marks_the_task_completed(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "Pay rent"})

    envelope = await tools.call("complete_task", {"user_id": user, "task_id": added["task_id"]})

    data = envelope["data"]
    assert parse_utc(data["updated_at"]) >= parse_utc(added["updated_at"])
    assert envelope == {
        "status": "success",
        "data": {
            **added,
            "completed": True,
            "completed_at": data["updated_at"],
            "updated_at": data["updated_at"],
        },
        "message": f"Task {added['task_id']} 'Pay rent' is now completed.",
    }
    assert await tools.tasks_of(user) == [data]


async def test_complete_task_twice_succeeds_and_says_already_completed(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "Pay rent"})
    first = await tools.call("complete_task", {"user_id": user, "task_id": added["task_id"]})

    second = await tools.call("complete_task", {"user_id": user, "task_id": added["task_id"]})

    assert second == {
        "status": "success",
        "data": first["data"],
        "message": f"Task {added['task_id']} 'Pay rent' was already completed.",
    }
    assert await tools.tasks_of(user) == [first["data"]]


async def test_update_task_title_only_keeps_the_description(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "Old", "description": "Keep me"})

    envelope = await tools.call(
        "update_task", {"user_id": user, "task_id": added["task_id"], "title": " New "}
    )

    task = envelope["data"]["task"]
    assert parse_utc(task["updated_at"]) >= parse_utc(added["updated_at"])
    assert envelope == {
        "status": "success",
        "data": {
            "task_id": added["task_id"],
            "updated_fields": ["title"],
            "task": {**added, "title": "New", "updated_at": task["updated_at"]},
        },
        "message": f"Task {added['task_id']} was updated (title).",
    }
    assert await tools.tasks_of(user) == [task]


async def test_update_task_description_only_keeps_the_title(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "Same"})

    data = await tools.ok("update_task", {"user_id": user, "task_id": added["task_id"], "description": "Now"})

    assert data == {
        "task_id": added["task_id"],
        "updated_fields": ["description"],
        "task": {**added, "description": "Now", "updated_at": data["task"]["updated_at"]},
    }


async def test_update_task_both_fields_lists_both(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "A", "description": "a"})

    envelope = await tools.call(
        "update_task", {"user_id": user, "task_id": added["task_id"], "title": "B", "description": "b"}
    )

    assert envelope["data"]["updated_fields"] == ["title", "description"]
    assert envelope["message"] == f"Task {added['task_id']} was updated (title, description)."
    assert envelope["data"]["task"] == {
        **added,
        "title": "B",
        "description": "b",
        "updated_at": envelope["data"]["task"]["updated_at"],
    }


async def test_update_task_with_empty_description_clears_it(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "A", "description": "remove me"})

    data = await tools.ok("update_task", {"user_id": user, "task_id": added["task_id"], "description": ""})

    assert data["updated_fields"] == ["description"]
    assert data["task"]["description"] is None
    assert (await tools.tasks_of(user))[0]["description"] is None


async def test_update_task_does_not_change_completion(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "Done already"})
    await tools.ok("complete_task", {"user_id": user, "task_id": added["task_id"]})

    data = await tools.ok("update_task", {"user_id": user, "task_id": added["task_id"], "title": "Renamed"})

    assert data["task"]["completed"] is True


async def test_delete_task_returns_its_id_and_title_and_removes_it(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    kept = await tools.ok("add_task", {"user_id": user, "title": "Keep"})
    doomed = await tools.ok("add_task", {"user_id": user, "title": "Drop", "description": "bye"})

    envelope = await tools.call("delete_task", {"user_id": user, "task_id": doomed["task_id"]})

    assert envelope == {
        "status": "success",
        "data": {"task_id": doomed["task_id"], "title": "Drop"},
        "message": f"Task {doomed['task_id']} 'Drop' was deleted.",
    }
    assert await tools.tasks_of(user) == [kept]


async def test_deleted_task_is_then_not_found(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    doomed = await tools.ok("add_task", {"user_id": user, "title": "Drop"})
    await tools.ok("delete_task", {"user_id": user, "task_id": doomed["task_id"]})

    again = await tools.call("delete_task", {"user_id": user, "task_id": doomed["task_id"]})

    assert again["data"] == {"error_code": 404}
    assert str(doomed["task_id"]) in again["message"]


async def test_list_tasks_filters_by_status_and_counts(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    first = await tools.ok("add_task", {"user_id": user, "title": "First"})
    second = await tools.ok("add_task", {"user_id": user, "title": "Second"})
    third = await tools.ok("add_task", {"user_id": user, "title": "Third"})
    second = await tools.ok("complete_task", {"user_id": user, "task_id": second["task_id"]})

    listings = {
        status: await tools.call("list_tasks", {"user_id": user, "status": status})
        for status in ("all", "pending", "completed")
    }

    assert listings == {
        "all": {
            "status": "success",
            "data": page([first, second, third]),
            "message": "Found 3 tasks.",
        },
        "pending": {
            "status": "success",
            "data": page([first, third]),
            "message": "Found 2 pending tasks.",
        },
        "completed": {
            "status": "success",
            "data": page([second]),
            "message": "Found 1 completed task.",
        },
    }


async def test_list_tasks_without_status_lists_all(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    pending = await tools.ok("add_task", {"user_id": user, "title": "Pending"})
    done = await tools.ok("add_task", {"user_id": user, "title": "Done"})
    done = await tools.ok("complete_task", {"user_id": user, "task_id": done["task_id"]})

    assert await tools.ok("list_tasks", {"user_id": user}) == page([pending, done])


async def test_list_tasks_of_a_user_without_tasks_is_empty(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()

    assert await tools.call("list_tasks", {"user_id": user, "status": "completed"}) == {
        "status": "success",
        "data": page([]),
        "message": "There are no completed tasks.",
    }
