"""One INFO line per tool call, and unexpected errors that reach the log but not the caller.

The unit under test in the 500 cases is the error mapping of the tool runtime, so a service
function is replaced by one that raises; the database and everything else stay real.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final, NoReturn

import pytest

from tests.conftest import UserFactory
from tests.mcp.conftest import TOOL_NAMES, ToolClient
from todo_mcp.services import tasks
from todo_mcp.services.errors import DatabaseUnavailable

pytestmark = pytest.mark.anyio

TOOLS_LOGGER: Final = "todo_mcp.tools"
SECRET: Final = "secret db text"
ERROR_ID: Final = re.compile(r"error id ([0-9a-f]{12})")


def tool_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == TOOLS_LOGGER and r.levelno == level]


def call_line(tool: str, user: str, outcome: str | int) -> re.Pattern[str]:
    return re.compile(rf"tool={tool} user={re.escape(repr(user))} outcome={outcome} duration_ms=\d+\.\d")


async def arguments_for(tools: ToolClient, user: str, tool: str) -> dict[str, Any]:
    task = await tools.ok("add_task", {"user_id": user, "title": "Subject"})
    return {
        "add_task": {"user_id": user, "title": "Logged"},
        "list_tasks": {"user_id": user},
        "complete_task": {"user_id": user, "task_id": task["task_id"]},
        "delete_task": {"user_id": user, "task_id": task["task_id"]},
        "update_task": {"user_id": user, "task_id": task["task_id"], "title": "Logged"},
    }[tool]


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_successful_call_logs_one_info_line_with_tool_user_outcome_and_duration(
    tools: ToolClient, user_factory: UserFactory, caplog: pytest.LogCaptureFixture, tool: str
) -> None:
    user = await user_factory()
    arguments = await arguments_for(tools, user, tool)
    caplog.set_level(logging.INFO, logger=TOOLS_LOGGER)
    caplog.clear()

    await tools.ok(tool, arguments)

    [line] = tool_lines(caplog)
    assert call_line(tool, user, "ok").fullmatch(line), line


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_failed_calls_log_one_info_line_each_with_the_error_code(
    tools: ToolClient, user_factory: UserFactory, caplog: pytest.LogCaptureFixture, tool: str
) -> None:
    user = await user_factory()
    arguments = await arguments_for(tools, user, tool)
    caplog.set_level(logging.INFO, logger=TOOLS_LOGGER)
    caplog.clear()

    await tools.call(tool, {**arguments, "user_id": "nobody"})
    await tools.call(tool, {**arguments, "user_id": 42})

    lines = tool_lines(caplog)
    assert len(lines) == 2, lines
    assert call_line(tool, "nobody", 404).fullmatch(lines[0]), lines[0]
    # A user_id that is not a string is not logged as if it were one.
    assert re.fullmatch(rf"tool={tool} user=None outcome=400 duration_ms=\d+\.\d", lines[1]), lines[1]


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_unexpected_error_is_a_500_with_an_error_id_and_the_traceback_goes_to_the_log(
    tools: ToolClient,
    user_factory: UserFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tool: str,
) -> None:
    user = await user_factory()
    arguments = await arguments_for(tools, user, tool)

    async def fail(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(SECRET)

    # Each tool calls the service function of the same name.
    monkeypatch.setattr(tasks, tool, fail)
    caplog.set_level(logging.INFO, logger=TOOLS_LOGGER)
    caplog.clear()

    envelope = await tools.call(tool, arguments)

    message: str = envelope["message"]
    assert envelope["data"] == {"error_code": 500}
    match = ERROR_ID.search(message)
    assert match is not None, message
    error_id = match.group(1)
    assert SECRET not in message
    assert "RuntimeError" not in message
    assert "Traceback" not in message
    [error] = [r for r in caplog.records if r.name == TOOLS_LOGGER and r.levelno == logging.ERROR]
    assert error_id in error.getMessage()
    assert error.exc_info is not None
    assert isinstance(error.exc_info[1], RuntimeError)
    assert str(error.exc_info[1]) == SECRET
    assert "Traceback" in caplog.text
    assert SECRET in caplog.text
    [line] = tool_lines(caplog)
    assert call_line(tool, user, 500).fullmatch(line), line


async def test_two_unexpected_errors_get_different_error_ids(
    tools: ToolClient, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await user_factory()

    async def fail(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(tasks, "list_tasks", fail)

    messages = [(await tools.call("list_tasks", {"user_id": user}))["message"] for _ in range(2)]

    ids = [match.group(1) for message in messages if (match := ERROR_ID.search(message))]
    assert len(ids) == 2
    assert ids[0] != ids[1]


async def test_unexpected_error_after_a_write_inside_a_tool_rolls_the_write_back(
    tools: ToolClient, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool that reads and then writes does both in one transaction: failing after the write
    leaves the task as it was. (A tool of one statement, such as add_task, has nothing to
    leave half done; the runtime opens no transaction of its own.)"""
    user = await user_factory()
    added = await tools.ok("add_task", {"user_id": user, "title": "Half done"})
    real_set_completed = tasks._set_completed

    async def write_then_fail(*args: Any, **kwargs: Any) -> NoReturn:
        await real_set_completed(*args, **kwargs)
        raise RuntimeError(SECRET)

    monkeypatch.setattr(tasks, "_set_completed", write_then_fail)

    envelope = await tools.call("complete_task", {"user_id": user, "task_id": added["task_id"]})

    assert envelope["data"] == {"error_code": 500}
    [task] = await tools.tasks_of(user)
    assert task["completed"] is False
    assert task["updated_at"] == added["updated_at"]


async def test_database_unavailable_is_a_503_with_an_error_id_and_no_driver_text(
    tools: ToolClient,
    user_factory: UserFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await user_factory()

    async def unreachable(*args: object, **kwargs: object) -> NoReturn:
        raise DatabaseUnavailable() from ConnectionRefusedError("connect to 10.9.8.7:5432 refused")

    monkeypatch.setattr(tasks, "list_tasks", unreachable)
    caplog.set_level(logging.INFO, logger=TOOLS_LOGGER)
    caplog.clear()

    envelope = await tools.call("list_tasks", {"user_id": user})

    message: str = envelope["message"]
    assert envelope["data"] == {"error_code": 503}
    match = ERROR_ID.search(message)
    assert match is not None, message
    assert "10.9.8.7" not in message
    [error] = [r for r in caplog.records if r.name == TOOLS_LOGGER and r.levelno == logging.ERROR]
    assert match.group(1) in error.getMessage()
    # The operator sees the cause on the line, without a traceback per call of an outage.
    assert "cause=ConnectionRefusedError: connect to 10.9.8.7:5432 refused" in error.getMessage()
    assert error.exc_info is None
    [line] = tool_lines(caplog)
    assert call_line("list_tasks", user, 503).fullmatch(line), line
