"""The built-in offline model, phrase by phrase, through the whole path: the chat endpoint, the
Runner, the MCP client, the tools and the database (SQLite and PostgreSQL).

Each case starts from the same five tasks (made through REST, with the clock stopped on
Wednesday 2 December 2026, 10:00 UTC), says one or more messages in one conversation, and
checks the tool calls of the last reply and the whole list afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.assistant.conftest import Chat, chat_app
from tests.clock import at
from tests.conftest import UserFactory

from todo_mcp.config import Settings
from todo_mcp.db.engine import Database

pytestmark = pytest.mark.anyio

NOW = "2026-12-02T10:00:00Z"  # a Wednesday
TODAY, TOMORROW, FRIDAY, SATURDAY, MONDAY = (
    "2026-12-02",
    "2026-12-03",
    "2026-12-04",
    "2026-12-05",
    "2026-12-07",
)

# title -> (completed, due_date, due_time, priority, labels)
State = dict[str, tuple[bool, str | None, str | None, str, tuple[str, ...]]]

SEED: list[dict[str, Any]] = [
    {"title": "Call the dentist", "due": "tomorrow 09:00", "priority": "high", "labels": ["health"]},
    {"title": "Buy milk", "labels": ["errands"]},
    {"title": "Write the report", "due": "friday", "priority": "medium", "labels": ["work"]},
    {"title": "Pay rent", "due": "2026-12-01"},
    {"title": "Water the plants", "completed": True},
]
SEED_STATE: State = {
    "Call the dentist": (False, TOMORROW, "09:00", "high", ("health",)),
    "Buy milk": (False, None, None, "none", ("errands",)),
    "Write the report": (False, FRIDAY, None, "medium", ("work",)),
    "Pay rent": (False, "2026-12-01", None, "none", ()),
    "Water the plants": (True, None, None, "none", ()),
}


def new(due: str | None = None, time: str | None = None, priority: str = "none", *labels: str) -> Any:
    """A pending task's state."""
    return (False, due, time, priority, tuple(labels))


@dataclass(frozen=True)
class Case:
    name: str
    say: tuple[str, ...]
    # The last reply's tool calls: each tool's name and arguments it must carry (user_id aside).
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    # Tasks changed ({title: the new tuple, or None when deleted}), and added.
    changed: State | dict[str, None] = field(default_factory=dict)
    added: State = field(default_factory=dict)
    # Words the last answer must contain.
    reply: tuple[str, ...] = ()
    extra: tuple[dict[str, Any], ...] = ()


def case(name: str, *say: str, **parts: Any) -> Case:
    return Case(name=name, say=say, **parts)


CASES = [
    # Adding, with due dates, times, priorities and labels.
    case(
        "add plain",
        "add buy bread",
        calls=(("add_task", {"title": "Buy bread"}),),
        added={"Buy bread": new()},
        reply=("Added", "Buy bread"),
    ),
    case(
        "add with day and time",
        "Add a task to call mom tomorrow at 6pm",
        calls=(("add_task", {"title": "Call mom", "due": "tomorrow 18:00"}),),
        added={"Call mom": new(TOMORROW, "18:00")},
        reply=("tomorrow at 18:00",),
    ),
    case(
        "remind me on a weekday",
        "remind me to pay the gas bill on friday",
        calls=(("add_task", {"title": "Pay the gas bill", "due": "friday"}),),
        added={"Pay the gas bill": new(FRIDAY)},
    ),
    case(
        "iso date and priority",
        "add file taxes due 2026-12-15 high priority",
        calls=(("add_task", {"title": "File taxes", "due": "2026-12-15", "priority": "high"}),),
        added={"File taxes": new("2026-12-15", None, "high")},
    ),
    case(
        "hashtag label",
        "add pick up parcel #errands",
        calls=(("add_task", {"title": "Pick up parcel", "labels": ["errands"]}),),
        added={"Pick up parcel": new(None, None, "none", "errands")},
    ),
    case(
        "new task with low priority",
        "new task: water the garden, low priority",
        calls=(("add_task", {"title": "Water the garden", "priority": "low"}),),
        added={"Water the garden": new(None, None, "low")},
    ),
    case(
        "i need to ... next week",
        "I need to renew my passport next week",
        calls=(("add_task", {"title": "Renew my passport", "due": "next week"}),),
        added={"Renew my passport": new(MONDAY)},
    ),
    case(
        "in n days",
        "add call grandma in 3 days",
        calls=(("add_task", {"title": "Call grandma", "due": "in 3 days"}),),
        added={"Call grandma": new(SATURDAY)},
    ),
    case(
        "month name, label and urgency",
        "add submit expenses by December 15 #work urgent",
        calls=(
            (
                "add_task",
                {"title": "Submit expenses", "due": "2026-12-15", "priority": "high", "labels": ["work"]},
            ),
        ),
        added={"Submit expenses": new("2026-12-15", None, "high", "work")},
    ),
    case(
        "a time alone is today",
        "add team standup at 10:30",
        calls=(("add_task", {"title": "Team standup", "due": "today 10:30"}),),
        added={"Team standup": new(TODAY, "10:30")},
        reply=("today at 10:30",),
    ),
    case(
        "polite, with two labels",
        "please add book flights with labels travel and family",
        calls=(("add_task", {"title": "Book flights", "labels": ["travel", "family"]}),),
        added={"Book flights": new(None, None, "none", "travel", "family")},
    ),
    case(
        "create a task called",
        "create a task called Clean the garage",
        calls=(("add_task", {"title": "Clean the garage"}),),
        added={"Clean the garage": new()},
    ),
    # Listing.
    case(
        "what's on my list",
        "what's on my list?",
        calls=(("list_tasks", {"status": "pending"}),),
        reply=("4 pending tasks", "Call the dentist", "Pay rent"),
    ),
    case(
        "due today",
        "what's due today?",
        calls=(("list_tasks", {"due": "today"}),),
        reply=("no pending tasks due today",),
    ),
    case(
        "overdue",
        "what is overdue?",
        calls=(("list_tasks", {"due": "overdue"}),),
        reply=("one overdue task", "Pay rent"),
    ),
    case(
        "completed",
        "show completed tasks",
        calls=(("list_tasks", {"status": "completed"}),),
        reply=("Water the plants",),
    ),
    case(
        "find by word",
        "find the dentist task",
        calls=(("list_tasks", {"query": "dentist"}),),
        reply=("Call the dentist",),
    ),
    case("search for", "search for milk", calls=(("list_tasks", {"query": "milk"}),), reply=("Buy milk",)),
    case(
        "by label",
        "show tasks labelled work",
        calls=(("list_tasks", {"labels": ["work"]}),),
        reply=("Write the report",),
    ),
    case(
        "by priority",
        "show high priority tasks",
        calls=(("list_tasks", {"priority": ["high"]}),),
        reply=("Call the dentist",),
    ),
    case(
        "due tomorrow",
        "what's due tomorrow",
        calls=(("list_tasks", {"due": "tomorrow"}),),
        reply=("Call the dentist", "tomorrow at 09:00"),
    ),
    case(
        "this week",
        "what do I have this week",
        calls=(("list_tasks", {"due": "next_7_days"}),),
        reply=("Call the dentist", "Write the report"),
    ),
    case(
        "everything",
        "show all my tasks",
        calls=(("list_tasks", {"status": "all"}),),
        reply=("5 tasks", "Water the plants"),
    ),
    case(
        "due on a weekday",
        "what's due friday",
        calls=(("list_tasks", {"due_from": "friday", "due_to": "friday"}),),
        reply=("Write the report",),
    ),
    # Changing a task named in words: list first, then act.
    case(
        "complete by word",
        "complete the dentist task",
        calls=(("list_tasks", {"query": "dentist", "status": "pending"}), ("complete_task", {})),
        changed={"Call the dentist": (True, TOMORROW, "09:00", "high", ("health",))},
        reply=("Call the dentist", "completed"),
    ),
    case(
        "mark as done",
        "mark buy milk as done",
        calls=(("list_tasks", {"query": "buy milk"}), ("complete_task", {})),
        changed={"Buy milk": (True, None, None, "none", ("errands",))},
    ),
    case(
        "i finished",
        "I finished the report",
        calls=(("list_tasks", {"query": "report"}), ("complete_task", {})),
        changed={"Write the report": (True, FRIDAY, None, "medium", ("work",))},
    ),
    case(
        "complete by id",
        "complete task {Buy milk}",
        calls=(("complete_task", {"task_id": "{Buy milk}"}),),
        changed={"Buy milk": (True, None, None, "none", ("errands",))},
    ),
    case(
        "reopen",
        "reopen the plants task",
        calls=(
            ("list_tasks", {"query": "plants", "status": "completed"}),
            ("update_task", {"completed": False}),
        ),
        changed={"Water the plants": (False, None, None, "none", ())},
        reply=("reopened",),
    ),
    case(
        "rename",
        "rename the dentist task to Call Dr. Smith",
        calls=(("list_tasks", {"query": "dentist"}), ("update_task", {"title": "Call Dr. Smith"})),
        changed={"Call the dentist": None},
        added={"Call Dr. Smith": (False, TOMORROW, "09:00", "high", ("health",))},
    ),
    case(
        "change x to y",
        "change buy milk to buy oat milk",
        calls=(("list_tasks", {"query": "buy milk"}), ("update_task", {"title": "Buy oat milk"})),
        changed={"Buy milk": None},
        added={"Buy oat milk": (False, None, None, "none", ("errands",))},
    ),
    case(
        "move to a weekday",
        "move the report to monday",
        calls=(("list_tasks", {"query": "report"}), ("update_task", {"due": "monday"})),
        changed={"Write the report": (False, MONDAY, None, "medium", ("work",))},
    ),
    case(
        "postpone to next week",
        "postpone the dentist to next week",
        calls=(("list_tasks", {"query": "dentist"}), ("update_task", {"due": "next week"})),
        changed={"Call the dentist": (False, MONDAY, None, "high", ("health",))},
    ),
    case(
        "reschedule with a time",
        "reschedule the dentist task to tomorrow 10:00",
        calls=(("list_tasks", {}), ("update_task", {"due": "tomorrow 10:00"})),
        changed={"Call the dentist": (False, TOMORROW, "10:00", "high", ("health",))},
    ),
    case(
        "remove the due date",
        "remove the due date from the report",
        calls=(("list_tasks", {"query": "report"}), ("update_task", {"due": ""})),
        changed={"Write the report": (False, None, None, "medium", ("work",))},
        reply=("no longer has a due date",),
    ),
    case(
        "make it high priority",
        "make the milk task high priority",
        calls=(("list_tasks", {"query": "milk"}), ("update_task", {"priority": "high"})),
        changed={"Buy milk": (False, None, None, "high", ("errands",))},
    ),
    case(
        "set priority of",
        "set priority of the report to low",
        calls=(("list_tasks", {"query": "report"}), ("update_task", {"priority": "low"})),
        changed={"Write the report": (False, FRIDAY, None, "low", ("work",))},
    ),
    case(
        "label as",
        "label the rent task as bills",
        calls=(("list_tasks", {"query": "rent"}), ("update_task", {"labels": ["bills"]})),
        changed={"Pay rent": (False, "2026-12-01", None, "none", ("bills",))},
    ),
    case(
        "tag keeps the labels it had",
        "tag buy milk with home",
        calls=(("list_tasks", {"query": "buy milk"}), ("update_task", {"labels": ["errands", "home"]})),
        changed={"Buy milk": (False, None, None, "none", ("errands", "home"))},
    ),
    case(
        "delete",
        "delete the rent task",
        calls=(("list_tasks", {"query": "rent"}), ("delete_task", {})),
        changed={"Pay rent": None},
        reply=("deleted", "Pay rent"),
    ),
    case(
        "remove",
        "remove buy milk",
        calls=(("list_tasks", {"query": "buy milk"}), ("delete_task", {})),
        changed={"Buy milk": None},
    ),
    # Two matches: it asks back, and the answer picks one.
    case(
        "ask back, then the second one",
        "complete the dentist task",
        "the second one",
        extra=({"title": "Dentist invoice"},),
        calls=(("complete_task", {"task_id": "{Dentist invoice}"}),),
        added={"Dentist invoice": (True, None, None, "none", ())},
        reply=("Dentist invoice", "completed"),
    ),
    case(
        "ask back, then a number, to delete",
        "delete the dentist task",
        "1",
        extra=({"title": "Dentist invoice"},),
        calls=(("delete_task", {"task_id": "{Call the dentist}"}),),
        changed={"Call the dentist": None},
        added={"Dentist invoice": new()},
    ),
    case(
        "nothing matches",
        "complete the yoga task",
        calls=(("list_tasks", {"query": "yoga"}),),
        reply=("couldn't find", "yoga"),
    ),
    case(
        "several words, none in a title together",
        "complete the dentist appointment",
        calls=(
            ("list_tasks", {"query": "dentist appointment"}),
            ("list_tasks", {"status": "pending"}),
            ("complete_task", {}),
        ),
        changed={"Call the dentist": (True, TOMORROW, "09:00", "high", ("health",))},
    ),
    # Talk that needs no tool.
    case("greeting", "hi", reply=("I can add tasks",)),
    case("not understood", "what's the weather like?", reply=("didn't understand", "I can add tasks")),
    case("thanks", "thanks!", reply=("welcome",)),
    case("help", "help", reply=("complete the dentist task",)),
]


async def seed(chat: Chat, user: str, tasks: list[dict[str, Any]]) -> dict[str, int]:
    ids = {}
    for task in tasks:
        body = {key: value for key, value in task.items() if key != "completed"}
        created = await chat.client.post(f"/api/{user}/tasks", json=body, headers=chat.auth(user))
        assert created.status_code == 201, created.text
        ids[task["title"]] = created.json()["id"]
        if task.get("completed"):
            done = await chat.client.patch(
                f"/api/{user}/tasks/{created.json()['id']}/complete",
                json={"completed": True},
                headers=chat.auth(user),
            )
            assert done.status_code == 200
    return ids


def with_ids(value: Any, ids: dict[str, int]) -> Any:
    """`{Title}` placeholders replaced by that task's id."""
    if isinstance(value, str):
        if match := re.fullmatch(r"\{(.+)\}", value):
            return ids[match.group(1)]
        return re.sub(r"\{(.+?)\}", lambda m: str(ids[m.group(1)]), value)
    if isinstance(value, dict):
        return {key: with_ids(item, ids) for key, item in value.items()}
    return value


def state_of(tasks: list[dict[str, Any]]) -> State:
    return {
        task["title"]: (
            task["completed"],
            task["due_date"],
            task["due_time"],
            task["priority"],
            tuple(task["labels"]),
        )
        for task in tasks
    }


@pytest.mark.parametrize("spoken", CASES, ids=[c.name for c in CASES])
async def test_the_offline_model_does_what_each_phrase_asks(
    spoken: Case, settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("speaker")
    async with chat_app(settings, db, clock=at(NOW)) as chat:
        ids = await seed(chat, user, [*SEED, *spoken.extra])
        conversation = None
        for message in spoken.say:
            response = await chat.say(user, with_ids(message, ids), conversation)
            assert response.status_code == 200, response.text
            conversation = response.json()["conversation_id"]
        answer = response.json()
        after = state_of(await chat.tasks(user, status="all"))

    calls = answer["tool_calls"]
    assert [call["name"] for call in calls] == [name for name, _ in spoken.calls], answer
    for call, (_, expected) in zip(calls, spoken.calls, strict=True):
        assert call["arguments"]["user_id"] == user
        wanted = with_ids(expected, ids)
        assert {key: call["arguments"].get(key) for key in wanted} == wanted, call["arguments"]
        assert call["result"]["status"] == "success", call["result"]
    expected_state = {**SEED_STATE, **{task["title"]: new() for task in spoken.extra}}
    for title, value in spoken.changed.items():
        if value is None:
            del expected_state[title]
        else:
            expected_state[title] = value
    expected_state.update(spoken.added)
    assert after == expected_state
    for words in spoken.reply:
        assert words.lower() in answer["response"].lower(), answer["response"]


async def test_an_ask_back_lists_the_matches_with_their_ids_and_changes_nothing(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("speaker")
    async with chat_app(settings, db, clock=at(NOW)) as chat:
        ids = await seed(chat, user, [*SEED, {"title": "Dentist invoice"}])
        response = await chat.say(user, "complete the dentist task")
        after = state_of(await chat.tasks(user, status="all"))

    answer = response.json()["response"]
    assert f"(#{ids['Call the dentist']}" in answer
    assert f"(#{ids['Dentist invoice']}" in answer
    assert "Which one should I complete?" in answer
    assert [call["name"] for call in response.json()["tool_calls"]] == ["list_tasks"]
    assert after == {**SEED_STATE, "Dentist invoice": new()}


def test_there_are_at_least_forty_phrasings() -> None:
    assert len(CASES) >= 40
