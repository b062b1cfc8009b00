"""What agents see of each tool, pinned: a change to it must be deliberate.

Each tool's name, title, description, input and output schemas and annotations are kept as
pretty JSON in snapshots/<tool>.json. To accept a change, run

    UPDATE_TOOLSNAPS=true .venv/bin/pytest tests/mcp/test_tool_schemas.py

and review the snapshot diff like code. Invariant tests over all tools follow, including
checks that the annotations tell the truth about what each tool does.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.conftest import UserFactory, make_settings
from tests.mcp.conftest import MODES, TOOL_NAMES, ToolClient, connect
from todo_mcp.db.engine import Database

pytestmark = pytest.mark.anyio

SNAPSHOTS: Final = Path(__file__).parent / "snapshots"
PINNED_KEYS: Final = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
HINTS: Final = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")

Definition = dict[str, Any]


def updating_snapshots() -> bool:
    return os.environ.get("UPDATE_TOOLSNAPS", "").lower() == "true"


def pinned(definition: Definition) -> Definition:
    return {key: definition[key] for key in PINNED_KEYS if key in definition}


def as_snapshot(definition: Definition) -> str:
    return json.dumps(pinned(definition), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


async def definitions(db: Database, mode: str) -> dict[str, Definition]:
    """The tools as a client of the given protocol mode lists them, in wire form (camelCase)."""
    async with connect(db, mode=mode) as tools:
        listed = await tools.client.list_tools()
    return {
        tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed.tools
    }


@pytest.fixture
async def schema_db(sqlite_url: str) -> AsyncIterator[Database]:
    """Listing tools touches no table: an unmigrated SQLite file is enough, and one database suffices."""
    database = Database.from_settings(make_settings(sqlite_url))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def listed(schema_db: Database) -> dict[str, Definition]:
    return await definitions(schema_db, "legacy")


@pytest.mark.parametrize("name", TOOL_NAMES)
async def test_tool_definition_matches_its_snapshot(listed: dict[str, Definition], name: str) -> None:
    path = SNAPSHOTS / f"{name}.json"
    live = as_snapshot(listed[name])
    if updating_snapshots():
        path.write_text(live, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing; create it with UPDATE_TOOLSNAPS=true and review it"
    pinned_text = path.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            pinned_text.splitlines(keepends=True),
            live.splitlines(keepends=True),
            fromfile=f"snapshots/{name}.json (pinned)",
            tofile=f"{name} (live list_tools)",
        )
    )
    assert live == pinned_text, (
        f"What agents see of {name} changed. If the change is intended, rerun with "
        f"UPDATE_TOOLSNAPS=true and commit the snapshot; otherwise fix the tool.\n{diff}"
    )


def test_every_snapshot_belongs_to_a_tool() -> None:
    assert sorted(path.stem for path in SNAPSHOTS.glob("*.json")) == sorted(TOOL_NAMES)


async def test_both_protocol_modes_list_the_same_tools(schema_db: Database) -> None:
    legacy, modern = [await definitions(schema_db, mode) for mode in MODES]

    assert {name: pinned(d) for name, d in legacy.items()} == {name: pinned(d) for name, d in modern.items()}


async def test_exactly_the_five_tools_are_listed(listed: dict[str, Definition]) -> None:
    assert sorted(listed) == sorted(TOOL_NAMES)


async def test_every_tool_has_a_title_and_a_description(listed: dict[str, Definition]) -> None:
    missing = {
        name: [key for key in ("title", "description") if not str(definition.get(key, "")).strip()]
        for name, definition in listed.items()
    }

    assert missing == {name: [] for name in TOOL_NAMES}


async def test_every_input_property_has_a_description(listed: dict[str, Definition]) -> None:
    undescribed = {
        name: sorted(
            prop
            for prop, schema in definition["inputSchema"]["properties"].items()
            if not str(schema.get("description", "")).strip()
        )
        for name, definition in listed.items()
    }

    assert undescribed == {name: [] for name in TOOL_NAMES}


async def test_every_tool_requires_user_id(listed: dict[str, Definition]) -> None:
    assert {name: "user_id" in d["inputSchema"].get("required", []) for name, d in listed.items()} == (
        dict.fromkeys(TOOL_NAMES, True)
    )


async def test_every_tool_has_an_envelope_output_schema(listed: dict[str, Definition]) -> None:
    shapes = {
        name: (
            d["outputSchema"].get("type"),
            sorted(d["outputSchema"].get("properties", {})),
            sorted(d["outputSchema"].get("required", [])),
            d["outputSchema"]["properties"]["status"].get("enum"),
        )
        for name, d in listed.items()
        if "outputSchema" in d
    }

    envelope = ("object", ["data", "message", "status"], ["data", "message", "status"], ["success", "error"])
    assert shapes == dict.fromkeys(TOOL_NAMES, envelope)


async def test_every_tool_states_all_four_hints(listed: dict[str, Definition]) -> None:
    stated = {name: sorted(d.get("annotations", {})) for name, d in listed.items()}

    assert stated == dict.fromkeys(TOOL_NAMES, sorted(HINTS))


async def test_annotations_say_what_each_tool_does(listed: dict[str, Definition]) -> None:
    """Read-only, destructive and idempotent sets, derived from the annotations alone."""

    def having(hint: str) -> set[str]:
        return {name for name, d in listed.items() if d["annotations"][hint]}

    assert having("readOnlyHint") == {"list_tasks"}
    assert "delete_task" in having("destructiveHint")
    assert having("destructiveHint") <= {"delete_task", "update_task"}
    assert {"complete_task", "list_tasks"} <= having("idempotentHint")
    assert "add_task" not in having("idempotentHint")
    assert having("openWorldHint") == set()


# --- The annotations tell the truth ---------------------------------------------------------


async def state_of(tools: ToolClient, user: str) -> list[dict[str, Any]]:
    return await tools.tasks_of(user)


async def arguments_on_a_fresh_task(tools: ToolClient, user: str, tool: str) -> dict[str, Any]:
    task = await tools.ok("add_task", {"user_id": user, "title": "Subject", "description": "as is"})
    return {
        "add_task": {"user_id": user, "title": "Another", "description": "new"},
        "list_tasks": {"user_id": user, "status": "pending"},
        "complete_task": {"user_id": user, "task_id": task["task_id"]},
        "delete_task": {"user_id": user, "task_id": task["task_id"]},
        "update_task": {"user_id": user, "task_id": task["task_id"], "title": "Renamed", "description": ""},
    }[tool]


@pytest.fixture
async def tool_annotations(db: Database) -> dict[str, dict[str, Any]]:
    return {name: d["annotations"] for name, d in (await definitions(db, "legacy")).items()}


async def test_tools_annotated_read_only_change_nothing(
    tools: ToolClient, user_factory: UserFactory, tool_annotations: dict[str, dict[str, Any]]
) -> None:
    read_only = sorted(name for name, hints in tool_annotations.items() if hints["readOnlyHint"])
    user = await user_factory()
    changed: dict[str, bool] = {}
    for tool in read_only:
        arguments = await arguments_on_a_fresh_task(tools, user, tool)
        before = await state_of(tools, user)
        await tools.ok(tool, arguments)
        changed[tool] = await state_of(tools, user) != before

    assert changed == dict.fromkeys(read_only, False)
    assert read_only != []


async def test_tools_annotated_idempotent_change_nothing_more_when_repeated(
    tools: ToolClient, user_factory: UserFactory, tool_annotations: dict[str, dict[str, Any]]
) -> None:
    idempotent = sorted(name for name, hints in tool_annotations.items() if hints["idempotentHint"])
    user = await user_factory()
    changed: dict[str, bool] = {}

    def content(state: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        # updated_at records when a call ran, not what the task is; see the report on update_task.
        return [(t["task_id"], t["title"], t["description"], t["completed"]) for t in state]

    for tool in idempotent:
        arguments = await arguments_on_a_fresh_task(tools, user, tool)
        await tools.ok(tool, arguments)
        once = await state_of(tools, user)
        await tools.ok(tool, arguments)
        changed[tool] = content(await state_of(tools, user)) != content(once)

    assert changed == dict.fromkeys(idempotent, False)
    assert "complete_task" in idempotent


async def test_tools_not_annotated_destructive_keep_every_existing_value(
    tools: ToolClient, user_factory: UserFactory, tool_annotations: dict[str, dict[str, Any]]
) -> None:
    """A non-destructive tool only adds: no task disappears and no title or description changes."""
    additive = sorted(name for name, hints in tool_annotations.items() if not hints["destructiveHint"])
    user = await user_factory()
    lost: dict[str, list[tuple[Any, ...]]] = {}
    for tool in additive:
        arguments = await arguments_on_a_fresh_task(tools, user, tool)
        before = {(t["task_id"], t["title"], t["description"]) for t in await state_of(tools, user)}
        await tools.ok(tool, arguments)
        after = {(t["task_id"], t["title"], t["description"]) for t in await state_of(tools, user)}
        lost[tool] = sorted(before - after)

    assert lost == {name: [] for name in additive}
    assert "delete_task" not in additive
