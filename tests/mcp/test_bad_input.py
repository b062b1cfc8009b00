"""Bad arguments, for every argument of every tool: a 400 envelope that names the argument.

Each table test tries one argument's bad values in turn against an otherwise valid call and
compares the whole table of outcomes with the expected one, so a failure lists every value that
was mishandled. Each attempt also checks that nothing was written and that the next call works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import col, select

from tests.conftest import UserFactory
from tests.mcp.conftest import Envelope, ToolClient, connect
from todo_mcp.db.engine import Database
from todo_mcp.db.models import Task

pytestmark = pytest.mark.anyio


class Missing:
    """Stands for an argument left out of the call."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()
HUGE: Final = 1_000_000

# Fragments that would mean a message leaks internals instead of saying what to fix.
LEAKS: Final = (
    "Traceback",
    'File "',
    "sqlalchemy",
    "asyncpg",
    "sqlite",
    "psycopg",
    "IntegrityError",
    "SELECT ",
    "INSERT ",
    "UPDATE tasks",
    "DELETE FROM",
    "Error executing tool",
    "errors.pydantic.dev",
)

NOT_A_STRING: Final[dict[str, object]] = {
    "integer": 123,
    "float": 1.5,
    "true": True,
    "list": ["Buy milk"],
    "object": {"value": "Buy milk"},
}
UNSTORABLE: Final[dict[str, object]] = {"NUL": "Buy\x00milk", "lone surrogate": "Buy\ud800milk"}

USER_ID_BAD: Final[dict[str, object]] = {
    "missing": MISSING,
    "null": None,
    **NOT_A_STRING,
    "empty": "",
    "whitespace": " \t\n ",
    "too long": "u" * 256,
    "huge": "u" * HUGE,
    **UNSTORABLE,
}
TITLE_BAD: Final[dict[str, object]] = {
    "missing": MISSING,
    "null": None,
    **NOT_A_STRING,
    "empty": "",
    "whitespace": " \t\n ",
    "too long": "t" * 201,
    "too long after stripping": "  " + "t" * 201 + "  ",
    "huge": "t" * HUGE,
    **UNSTORABLE,
}
# update_task: a missing or null title means "keep the current one".
UPDATE_TITLE_BAD: Final = {
    label: value for label, value in TITLE_BAD.items() if label not in ("missing", "null")
}
# A missing, null, empty or blank description is allowed (none, or clear it).
DESCRIPTION_BAD: Final[dict[str, object]] = {
    **NOT_A_STRING,
    "too long": "d" * 1001,
    "huge": "d" * HUGE,
    **UNSTORABLE,
}
# `true` is left to its own test below, so that its outcome does not hide the others'.
TASK_ID_BAD: Final[dict[str, object]] = {
    "missing": MISSING,
    "null": None,
    "letters": "abc",
    "empty": "",
    "whitespace": "  ",
    "fraction": 1.5,
    "list": [1],
    "object": {"task_id": 1},
    "zero": 0,
    "negative": -1,
    "above 64 bits": 2**63,
    "huge": 10**30,
}
STATUS_BAD: Final[dict[str, object]] = {
    "unknown word": "done",
    "upper case": "ALL",
    "padded": " pending ",
    "empty": "",
    "whitespace": "   ",
    "null": None,
    "integer": 1,
    "true": True,
    "list": ["all"],
    "huge": "s" * HUGE,
    "NUL": "all\x00",
    "lone surrogate": "\ud800",
}


@dataclass(frozen=True)
class Outcome:
    """What a bad call did, reduced to the facts the contract fixes."""

    error_code: int | None
    names_argument: bool
    leaks: tuple[str, ...] = ()
    echoes_value: bool = False
    long_message: bool = False
    wrote: bool = False
    still_serves: bool = True


REJECTED: Final = Outcome(error_code=400, names_argument=True)

TaskRow = tuple[int | None, str, str, str | None, bool, object]


async def all_task_rows(db: Database) -> list[TaskRow]:
    """Every row of the tasks table, every user's: the proof that a call wrote nothing."""
    async with db.transaction() as session:
        rows = (await session.exec(select(Task).order_by(col(Task.id)))).all()
    return [(t.id, t.user_id, t.title, t.description, t.completed, t.updated_at) for t in rows]


@dataclass
class Scene:
    """A user with one task, plus another user's task that bad calls must not touch either."""

    tools: ToolClient
    db: Database
    user: str
    task_id: int

    def valid_arguments(self, tool: str) -> dict[str, Any]:
        by_tool: dict[str, dict[str, Any]] = {
            "add_task": {"user_id": self.user, "title": "Buy milk", "description": "Two litres"},
            "list_tasks": {"user_id": self.user, "status": "pending"},
            "complete_task": {"user_id": self.user, "task_id": self.task_id},
            "delete_task": {"user_id": self.user, "task_id": self.task_id},
            "update_task": {"user_id": self.user, "task_id": self.task_id, "title": "Renamed"},
        }
        return by_tool[tool]

    async def attempt(self, tool: str, arguments: dict[str, Any], argument: str, value: object) -> Outcome:
        rows_before = await all_task_rows(self.db)
        count_before = (await self.tools.ok("list_tasks", {"user_id": self.user}))["count"]

        envelope = await self.tools.call(tool, arguments)

        message: str = envelope["message"]
        follow_up = await self.tools.call("list_tasks", {"user_id": self.user})
        echoes = isinstance(value, str) and len(value) >= 8 and value[:50] in message
        return Outcome(
            error_code=envelope["data"]["error_code"] if envelope["status"] == "error" else None,
            names_argument=argument in message,
            leaks=tuple(fragment for fragment in LEAKS if fragment.lower() in message.lower()),
            echoes_value=echoes,
            long_message=len(message) > 400,
            wrote=await all_task_rows(self.db) != rows_before
            or follow_up["data"].get("count") != count_before,
            still_serves=follow_up["status"] == "success",
        )

    async def outcomes(self, tool: str, argument: str, values: dict[str, object]) -> dict[str, Outcome]:
        table: dict[str, Outcome] = {}
        for label, value in values.items():
            arguments = self.valid_arguments(tool)
            if isinstance(value, Missing):
                arguments.pop(argument, None)
            else:
                arguments[argument] = value
            table[label] = await self.attempt(tool, arguments, argument, value)
        return table


@pytest.fixture
async def scene(db: Database, mode: str, user_factory: UserFactory) -> AsyncIterator[Scene]:
    async with connect(db, mode=mode) as tools:
        user = await user_factory()
        bystander = await user_factory()
        task = await tools.ok("add_task", {"user_id": user, "title": "Existing", "description": "as is"})
        await tools.ok("add_task", {"user_id": bystander, "title": "Not yours"})
        yield Scene(tools=tools, db=db, user=user, task_id=task["task_id"])


def rejected(values: dict[str, object]) -> dict[str, Outcome]:
    return dict.fromkeys(values, REJECTED)


@pytest.mark.parametrize("tool", ["add_task", "list_tasks", "complete_task", "delete_task", "update_task"])
async def test_bad_user_id_is_rejected_with_400(scene: Scene, tool: str) -> None:
    assert await scene.outcomes(tool, "user_id", USER_ID_BAD) == rejected(USER_ID_BAD)


async def test_bad_add_task_title_is_rejected_with_400(scene: Scene) -> None:
    assert await scene.outcomes("add_task", "title", TITLE_BAD) == rejected(TITLE_BAD)


async def test_bad_update_task_title_is_rejected_with_400(scene: Scene) -> None:
    assert await scene.outcomes("update_task", "title", UPDATE_TITLE_BAD) == rejected(UPDATE_TITLE_BAD)


@pytest.mark.parametrize("tool", ["add_task", "update_task"])
async def test_bad_description_is_rejected_with_400(scene: Scene, tool: str) -> None:
    assert await scene.outcomes(tool, "description", DESCRIPTION_BAD) == rejected(DESCRIPTION_BAD)


@pytest.mark.parametrize("tool", ["complete_task", "delete_task", "update_task"])
async def test_bad_task_id_is_rejected_with_400(scene: Scene, tool: str) -> None:
    assert await scene.outcomes(tool, "task_id", TASK_ID_BAD) == rejected(TASK_ID_BAD)


@pytest.mark.parametrize("tool", ["complete_task", "delete_task", "update_task"])
async def test_task_id_true_is_rejected_not_read_as_task_1(scene: Scene, tool: str) -> None:
    # JSON true is not an integer (the input schema says "integer"); read as 1, it would act on
    # the scene's task, which is task 1 in the fresh database.
    assert scene.task_id == 1

    assert await scene.outcomes(tool, "task_id", {"true": True}) == {"true": REJECTED}


async def test_bad_status_is_rejected_with_400(scene: Scene) -> None:
    assert await scene.outcomes("list_tasks", "status", STATUS_BAD) == rejected(STATUS_BAD)


async def test_update_task_without_title_or_description_is_rejected_with_400(scene: Scene) -> None:
    base = {"user_id": scene.user, "task_id": scene.task_id}

    outcomes = {
        "both left out": await scene.attempt("update_task", base, "title", MISSING),
        "both null": await scene.attempt(
            "update_task", {**base, "title": None, "description": None}, "description", None
        ),
    }

    assert outcomes == {"both left out": REJECTED, "both null": REJECTED}


@pytest.mark.parametrize("tool", ["add_task", "list_tasks", "complete_task", "delete_task", "update_task"])
async def test_unknown_extra_argument_is_rejected_with_400(scene: Scene, tool: str) -> None:
    # An agent that invents an argument ("due_date") must learn it was not applied.
    arguments = {**scene.valid_arguments(tool), "due_date": "tomorrow"}

    assert await scene.attempt(tool, arguments, "due_date", "tomorrow") == REJECTED


async def test_arguments_left_out_entirely_are_rejected_with_400(scene: Scene) -> None:
    outcomes = {
        tool: await scene.attempt(tool, {}, "user_id", MISSING)
        for tool in ("add_task", "list_tasks", "complete_task", "delete_task", "update_task")
    }

    assert outcomes == dict.fromkeys(outcomes, REJECTED)


VERBATIM_TEXTS: Final = [
    "Caf\u00e9 \u2615 \u65e5\u672c\u8a9e",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family \U0001f389",
    "\u05e9\u05dc\u05d5\u05dd right-to-left",
    "e\u0301 combining accent",
    "'; DROP TABLE tasks; --",
    "Robert'); DROP TABLE users;--",
    '" OR 1=1 --',
    "100% of _all_ \\ backslashes",
    "\U0001f389" * 200,
]


async def test_unicode_emoji_and_sql_looking_titles_are_stored_verbatim(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()

    added = [
        (await tools.ok("add_task", {"user_id": user, "title": text}))["title"] for text in VERBATIM_TEXTS
    ]

    assert added == VERBATIM_TEXTS
    assert [task["title"] for task in await tools.tasks_of(user)] == VERBATIM_TEXTS


async def test_unicode_emoji_and_sql_looking_descriptions_are_stored_verbatim(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()
    task = await tools.ok("add_task", {"user_id": user, "title": "Holder"})
    texts = [*VERBATIM_TEXTS, "\u00e9" * 1000]

    updated = [
        (await tools.ok("update_task", {"user_id": user, "task_id": task["task_id"], "description": text}))[
            "task"
        ]["description"]
        for text in texts
    ]
    added = [
        (await tools.ok("add_task", {"user_id": user, "title": "t", "description": text}))["description"]
        for text in texts
    ]

    assert updated == texts
    assert added == texts
    assert [t["description"] for t in await tools.tasks_of(user)] == [texts[-1], *texts]


async def test_sql_looking_input_leaves_every_table_intact(
    db: Database, tools: ToolClient, user_factory: UserFactory
) -> None:
    victim = await user_factory()
    kept = await tools.ok("add_task", {"user_id": victim, "title": "Still here"})
    attacker = await user_factory()
    injection = "x'; DROP TABLE tasks; DELETE FROM users; --"

    await tools.ok("add_task", {"user_id": attacker, "title": injection, "description": injection})
    unknown_user = await tools.call("list_tasks", {"user_id": injection})

    async with db.engine_connection() as connection:

        def table_names(sync: Connection) -> list[str]:
            return sorted(inspect(sync).get_table_names())

        tables = await connection.run_sync(table_names)
    assert {"users", "tasks", "conversations", "messages"} <= set(tables)
    assert unknown_user["data"] == {"error_code": 404}
    assert await tools.tasks_of(victim) == [kept]
    assert [t["title"] for t in await tools.tasks_of(attacker)] == [injection]


async def test_titles_at_the_limits_are_accepted(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory()
    titles = ["t", "t" * 200, "  " + "t" * 200 + "  ", "\U0001f389" * 200]

    stored = [(await tools.ok("add_task", {"user_id": user, "title": title}))["title"] for title in titles]

    assert stored == ["t", "t" * 200, "t" * 200, "\U0001f389" * 200]


async def test_empty_or_blank_description_is_stored_as_none(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    user = await user_factory()

    stored = [
        (await tools.ok("add_task", {"user_id": user, "title": "t", "description": text}))["description"]
        for text in ("", "   ", "\n\t", None)
    ]

    assert stored == [None, None, None, None]


async def test_unicode_user_id_works_end_to_end(tools: ToolClient, user_factory: UserFactory) -> None:
    user = await user_factory("\u30e6\u30fc\u30b6\u30fc\U0001f642", email="unicode-user@example.com")

    added = await tools.ok("add_task", {"user_id": user, "title": "Hello"})

    assert await tools.tasks_of(user) == [added]


@pytest.mark.parametrize("task_id", [2**31 - 1, 2**31, 2**53, 2**63 - 1])
async def test_large_task_id_that_does_not_exist_is_404(
    tools: ToolClient, user_factory: UserFactory, task_id: int
) -> None:
    # The services accept ids up to 2**63 - 1 (64-bit ids), so every such id is a valid
    # argument that names no task: 404, like any other missing task, on every database.
    user = await user_factory()
    await tools.ok("add_task", {"user_id": user, "title": "Only task"})
    before = await tools.tasks_of(user)

    arguments: dict[str, Any] = {"user_id": user, "task_id": task_id}
    outcomes = {
        tool: (await tools.call(tool, arguments | ({"title": "x"} if tool == "update_task" else {})))["data"]
        for tool in ("complete_task", "delete_task", "update_task")
    }

    assert outcomes == {tool: {"error_code": 404} for tool in outcomes}
    assert await tools.tasks_of(user) == before


JSON_LOOKING: Final = ["null", "[]", "[1, 2]", '{"a": 1}', "true", "42", '"quoted"']


async def test_json_looking_text_is_stored_verbatim(tools: ToolClient, user_factory: UserFactory) -> None:
    # A title or description is text, whatever it looks like: "null" is not None, "[]" is not a list.
    user = await user_factory()
    holder = (await tools.ok("add_task", {"user_id": user, "title": "Holder"}))["task_id"]

    def stored(envelope: Envelope, field: str) -> object:
        """The stored value, or the error message that says why there is none."""
        data = envelope["data"]
        task = data.get("task", data)
        return task[field] if envelope["status"] == "success" else envelope["message"]

    table: dict[str, dict[str, object]] = {}
    for text in JSON_LOOKING:
        update = {"user_id": user, "task_id": holder}
        table[text] = {
            "add_task title": stored(await tools.call("add_task", {"user_id": user, "title": text}), "title"),
            "add_task description": stored(
                await tools.call("add_task", {"user_id": user, "title": "t", "description": text}),
                "description",
            ),
            "update_task title": stored(await tools.call("update_task", {**update, "title": text}), "title"),
            "update_task description": stored(
                await tools.call("update_task", {**update, "description": text}), "description"
            ),
        }

    assert table == {text: dict.fromkeys(table[text], text) for text in JSON_LOOKING}
