"""One user's tasks are invisible and untouchable to every other user, through every tool.

Another user's task is reported exactly like a task that does not exist, so no answer reveals
whether an id is someone else's. A process bound to one user refuses every other user_id.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import pytest
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from tests.conftest import UserFactory
from tests.mcp.conftest import MODES, TOOL_NAMES, Envelope, ToolClient, connect
from todo_mcp.db.engine import Database
from todo_mcp.services.identity import Caller

pytestmark = pytest.mark.anyio

FORBIDDEN: Final = {
    "status": "error",
    "data": {"error_code": 403},
    "message": "This token is for a different user; use your own user_id (the token's subject).",
}
# A task id no test reaches, within 32 bits: it names a task that never existed.
NEVER_EXISTED: Final = 2_000_000_000


def without_id(envelope: Envelope, task_id: int) -> Envelope:
    """The envelope with the task id in its message replaced, to compare two ids' answers."""
    message = re.sub(rf"\b{task_id}\b", "<id>", envelope["message"])
    return {**envelope, "message": message}


def arguments_for(tool: str, user_id: str, task_id: int) -> dict[str, Any]:
    by_tool: dict[str, dict[str, Any]] = {
        "add_task": {"user_id": user_id, "title": "Intruder", "description": "planted"},
        "list_tasks": {"user_id": user_id},
        "complete_task": {"user_id": user_id, "task_id": task_id},
        "delete_task": {"user_id": user_id, "task_id": task_id},
        "update_task": {"user_id": user_id, "task_id": task_id, "title": "Hijacked", "description": ""},
    }
    return by_tool[tool]


TASK_CALLS: Final = {
    "complete_task": {},
    "delete_task": {},
    "update_task title": {"title": "Hijacked"},
    "update_task description": {"description": "Hijacked"},
    "update_task clearing the description": {"description": ""},
}


@pytest.mark.parametrize("call", list(TASK_CALLS))
async def test_other_users_task_is_reported_exactly_like_a_missing_task(
    tools: ToolClient, user_factory: UserFactory, call: str
) -> None:
    alice, bob = await user_factory("alice"), await user_factory("bob")
    task = await tools.ok("add_task", {"user_id": alice, "title": "Secret", "description": "alice only"})
    await tools.ok("add_task", {"user_id": bob, "title": "Bob's own"})
    alice_before = await tools.tasks_of(alice)
    tool, extra = call.split(" ")[0], TASK_CALLS[call]

    for_alices = await tools.call(tool, {"user_id": bob, "task_id": task["task_id"], **extra})
    for_missing = await tools.call(tool, {"user_id": bob, "task_id": NEVER_EXISTED, **extra})

    assert for_alices["data"] == {"error_code": 404}
    assert without_id(for_alices, task["task_id"]) == without_id(for_missing, NEVER_EXISTED)
    assert await tools.tasks_of(alice) == alice_before


async def test_list_tasks_shows_only_the_users_own_tasks(
    tools: ToolClient, user_factory: UserFactory
) -> None:
    alice, bob = await user_factory("alice"), await user_factory("bob")
    alices = [await tools.ok("add_task", {"user_id": alice, "title": f"A{n}"}) for n in range(2)]
    bobs = [await tools.ok("add_task", {"user_id": bob, "title": "B"})]
    await tools.ok("complete_task", {"user_id": alice, "task_id": alices[0]["task_id"]})
    alices[0] = (await tools.tasks_of(alice))[0]

    listings = {
        (user, status): (await tools.ok("list_tasks", {"user_id": user, "status": status}))["tasks"]
        for user in (alice, bob)
        for status in ("all", "pending", "completed")
    }

    assert listings == {
        (alice, "all"): alices,
        (alice, "pending"): alices[1:],
        (alice, "completed"): alices[:1],
        (bob, "all"): bobs,
        (bob, "pending"): bobs,
        (bob, "completed"): [],
    }


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_process_bound_to_alice_refuses_bob_with_403_and_writes_nothing(
    db: Database, tools: ToolClient, user_factory: UserFactory, tool: str
) -> None:
    alice, bob = await user_factory("alice"), await user_factory("bob")
    bobs_task = await tools.ok("add_task", {"user_id": bob, "title": "Bob's", "description": "bob only"})
    await tools.ok("add_task", {"user_id": alice, "title": "Alice's"})
    before = {user: await tools.tasks_of(user) for user in (alice, bob)}

    async with connect(db, caller=Caller(user_id=alice)) as alices_process:
        envelope = await alices_process.call(tool, arguments_for(tool, bob, bobs_task["task_id"]))

    assert envelope == FORBIDDEN
    assert {user: await tools.tasks_of(user) for user in (alice, bob)} == before


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_process_bound_to_alice_answers_an_unknown_user_like_bob(
    db: Database, user_factory: UserFactory, tool: str
) -> None:
    """403 before any lookup: the answer does not reveal whether the other user exists."""
    alice, bob = await user_factory("alice"), await user_factory("bob")

    async with connect(db, caller=Caller(user_id=alice)) as alices_process:
        for_bob = await alices_process.call(tool, arguments_for(tool, bob, 1))
        for_nobody = await alices_process.call(tool, arguments_for(tool, "nobody", 1))

    assert for_bob == for_nobody == FORBIDDEN


async def test_process_bound_to_alice_serves_alice(db: Database, user_factory: UserFactory) -> None:
    alice = await user_factory("alice")

    async with connect(db, caller=Caller(user_id=alice)) as alices_process:
        task = await alices_process.ok("add_task", {"user_id": alice, "title": "Mine"})
        await alices_process.ok("complete_task", {"user_id": alice, "task_id": task["task_id"]})
        listed = await alices_process.tasks_of(alice)

    assert [(t["task_id"], t["completed"]) for t in listed] == [(task["task_id"], True)]


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_process_without_a_caller_refuses_every_call_with_401(
    db: Database, tools: ToolClient, user_factory: UserFactory, tool: str
) -> None:
    alice = await user_factory("alice")
    task = await tools.ok("add_task", {"user_id": alice, "title": "Alice's"})
    before = await tools.tasks_of(alice)

    async with connect(db, caller=None) as anonymous:
        envelope = await anonymous.call(tool, arguments_for(tool, alice, task["task_id"]))

    assert envelope["data"] == {"error_code": 401}
    assert await tools.tasks_of(alice) == before


@pytest.mark.parametrize("tool", TOOL_NAMES)
async def test_unknown_user_is_404_for_every_tool(
    tools: ToolClient, user_factory: UserFactory, tool: str
) -> None:
    alice = await user_factory("alice")
    alices_task = await tools.ok("add_task", {"user_id": alice, "title": "Alice's"})

    # Even naming an existing task: the missing user is what is reported.
    envelope = await tools.call(tool, arguments_for(tool, "ghost", alices_task["task_id"]))

    assert envelope == {
        "status": "error",
        "data": {"error_code": 404},
        "message": "User 'ghost' was not found; check the user_id.",
    }
    assert await tools.tasks_of(alice) == [alices_task]


# --- Random sequences of calls by three users against a model of each user's list ---------------

ToolName = Literal["add_task", "complete_task", "update_task", "delete_task", "list_tasks"]
TargetKind = Literal["own", "other", "deleted", "never"]
Status = Literal["all", "pending", "completed"]


@dataclass(frozen=True)
class Step:
    tool: ToolName
    actor: int
    target: TargetKind
    pick: int
    title: str | None
    description: str | None
    status: Status


@dataclass
class ModelTask:
    title: str
    description: str | None
    completed: bool = False


@dataclass
class Model:
    """What each user's list must be, built from the calls alone."""

    users: list[str]
    tasks: dict[str, dict[int, ModelTask]] = field(default_factory=dict)
    deleted: list[int] = field(default_factory=list)

    def listing(self, user: str, status: Status = "all") -> list[tuple[int, str, str | None, bool]]:
        return [
            (task_id, task.title, task.description, task.completed)
            for task_id, task in sorted(self.tasks[user].items())
            if status == "all" or task.completed == (status == "completed")
        ]

    def actor(self, step: Step) -> str:
        """The step's user; for a step on an own task, the next user who has one, if any does."""
        if step.target == "own":
            for offset in range(len(self.users)):
                user = self.users[(step.actor + offset) % len(self.users)]
                if self.tasks[user]:
                    return user
        return self.users[step.actor]

    def target(self, step: Step, actor: str) -> int:
        pool = {
            "own": sorted(self.tasks[actor]),
            "other": sorted(i for user in self.users if user != actor for i in self.tasks[user]),
            "deleted": self.deleted,
            "never": [],
        }[step.target]
        return pool[step.pick % len(pool)] if pool else NEVER_EXISTED + step.pick


# What the service refuses in any text: NUL, and control characters but tab, CR and LF.
UNSTORABLE_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_title(title: str) -> str | None:
    """The stored title, or None when the service must refuse it."""
    stripped = title.strip()
    return stripped if not UNSTORABLE_CHARACTERS.search(title) and 1 <= len(stripped) <= 200 else None


def clean_description(description: str) -> tuple[bool, str | None]:
    """(valid, stored value)."""
    stripped = description.strip()
    return not UNSTORABLE_CHARACTERS.search(description) and len(stripped) <= 1000, stripped or None


def listed(data: dict[str, Any]) -> list[tuple[int, str, str | None, bool]]:
    assert data["count"] == len(data["tasks"])
    return [(t["task_id"], t["title"], t["description"], t["completed"]) for t in data["tasks"]]


def json_null_or_container(text: str) -> bool:
    try:
        return not isinstance(json.loads(text), str | int | float)
    except ValueError:
        return False


# Mostly valid text, so that scripts build tasks up; sometimes text the service must refuse
# (blank, too long, NUL) or must store exactly (padding stripped, emoji, SQL-looking).
# Text that parses as JSON null, an array or an object ("null", "[]") is left out here: the
# SDK pre-parses such strings for `str | None` arguments, a known bug that
# test_bad_input.py::test_json_looking_text_is_stored_verbatim pins. Drawn here, it would make
# this test fail at random for that bug instead of for the isolation it is about.
valid_texts = st.text(min_size=1, max_size=12).filter(
    lambda text: bool(text.strip()) and not json_null_or_container(text)
) | st.sampled_from(["Buy milk", "  padded  ", "\U0001f389 party", "'; DROP TABLE tasks; --"])
texts = st.one_of(valid_texts, valid_texts, valid_texts, st.sampled_from(["", " ", "x" * 1001, "a\x00b"]))
steps = st.builds(
    Step,
    tool=st.sampled_from(
        ["add_task", "add_task", "complete_task", "update_task", "delete_task", "list_tasks"]
    ),
    actor=st.integers(0, 2),
    target=st.sampled_from(["own", "own", "own", "other", "deleted", "never"]),
    pick=st.integers(0, 50),
    title=st.none() | texts,
    description=st.one_of(st.none(), st.none(), texts),
    status=st.sampled_from(["all", "pending", "completed"]),
)


async def apply(tools: ToolClient, model: Model, step: Step, not_found: Envelope) -> None:
    """Make the call and check its answer against the model; then bring the model up to date."""
    actor = model.actor(step)
    own = model.tasks[actor]
    task_id = model.target(step, actor)

    if step.tool == "list_tasks":
        data = await tools.ok("list_tasks", {"user_id": actor, "status": step.status})
        assert listed(data) == model.listing(actor, step.status)
        return

    if step.tool == "add_task":
        # No title drawn: a plain valid one, so that most scripts build up tasks to act on.
        title = step.title if step.title is not None else f"Task {step.pick}"
        description_ok, description = (
            clean_description(step.description) if step.description is not None else (True, None)
        )
        envelope = await tools.call(
            "add_task", {"user_id": actor, "title": title, "description": step.description}
        )
        stored_title = clean_title(title)
        if stored_title is None or not description_ok:
            event("add_task: refused")
            assert envelope["data"] == {"error_code": 400}
            return
        event("add_task: added")
        new_id = envelope["data"]["task_id"]
        known = {i for tasks in model.tasks.values() for i in tasks} | set(model.deleted)
        assert new_id not in known, "a task id was handed out twice"
        own[new_id] = ModelTask(stored_title, description)
        return

    arguments = {"user_id": actor, "task_id": task_id}
    if step.tool == "update_task":
        arguments |= {"title": step.title, "description": step.description}
        new_title = clean_title(step.title) if step.title is not None else None
        description_ok, new_description = (
            clean_description(step.description) if step.description is not None else (True, None)
        )
        invalid = (step.title is None and step.description is None) or (
            (step.title is not None and new_title is None) or not description_ok
        )
        envelope = await tools.call("update_task", arguments)
        if invalid:
            # Arguments are checked before ownership, for every task id alike.
            event("update_task: refused")
            assert envelope["data"] == {"error_code": 400}
            return
    else:
        envelope = await tools.call(step.tool, arguments)

    if task_id not in own:
        event(f"{step.tool}: not found")
        assert without_id(envelope, task_id) == not_found
        return
    event(f"{step.tool}: own task")
    assert envelope["status"] == "success", envelope
    task = own[task_id]
    if step.tool == "complete_task":
        assert ("already completed" in envelope["message"]) == task.completed
        task.completed = True
    elif step.tool == "delete_task":
        assert envelope["data"] == {"task_id": task_id, "title": task.title}
        del own[task_id]
        model.deleted.append(task_id)
    else:
        task.title = new_title if new_title is not None else task.title
        task.description = new_description if step.description is not None else task.description
        expected_fields = [name for name in ("title", "description") if arguments[name] is not None]
        assert envelope["data"]["updated_fields"] == expected_fields


@settings(
    max_examples=40,
    print_blob=True,
    deadline=None,
    database=None,
    # No shrinking: each example makes dozens of database calls, and shrinking a failure
    # would run for minutes. A failure reports its whole script (at most 20 steps) instead.
    phases=(Phase.explicit, Phase.generate),
    # The database fixture outlives the examples: each example makes its own three users, so
    # earlier examples' rows are only more tasks of other users, which no step may see.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(script=st.lists(steps, min_size=1, max_size=20), mode=st.sampled_from(MODES))
async def test_random_calls_by_three_users_match_a_model_of_each_users_list(
    db: Database, user_factory: UserFactory, script: list[Step], mode: str
) -> None:
    prefix = secrets.token_hex(4)
    users = [await user_factory(f"{prefix}-{n}") for n in range(3)]
    model = Model(users=users, tasks={user: {} for user in users})

    async with connect(db, mode=mode) as tools:
        reference = await tools.call("complete_task", {"user_id": users[0], "task_id": NEVER_EXISTED})
        not_found = without_id(reference, NEVER_EXISTED)
        # One task each to start with, so that even short scripts act on own and others' tasks.
        for user in users:
            seed = await tools.ok("add_task", {"user_id": user, "title": "Seed"})
            model.tasks[user][seed["task_id"]] = ModelTask("Seed", None)
        for number, step in enumerate(script):
            note(f"step {number}: {step!r} by {model.actor(step)}")
            await apply(tools, model, step, not_found)
            for user in users:
                assert listed(await tools.ok("list_tasks", {"user_id": user})) == model.listing(user), step
