"""The chat endpoint driven by scripted models: the real Runner, the real MCP client, the
assistant's own MCP server in process, and the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import httpx2
import openai
import pytest
from agents.exceptions import ModelTimeoutError
from agents.items import TResponseOutputItem
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from tests.assistant.conftest import chat_app, messages_sent, tool_outputs
from tests.conftest import UserFactory, make_settings

from todo_mcp.config import Settings
from todo_mcp.db.engine import Database

pytestmark = pytest.mark.anyio


def error_body(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["detail"].strip()
    assert isinstance(body["error_id"], str)
    assert body["error_id"]
    return body


async def test_add_then_list_answers_with_each_tool_call_and_stores_both_messages(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    model = ScriptedModel(
        [
            [
                function_call(
                    "add_task", {"user_id": user, "title": "Buy milk", "due": "tomorrow"}, call_id="a"
                )
            ],
            [function_call("list_tasks", {"user_id": user, "status": "pending"}, call_id="b")],
            [assistant_message("Added Buy milk; it is your only pending task.")],
        ]
    )
    async with chat_app(settings, db, model) as chat:
        response = await chat.say(user, "add buy milk tomorrow and show my list")
        assert response.status_code == 200, response.text
        body = response.json()
        stored = await chat.messages(user, body["conversation_id"])
        listed = await chat.tasks(user)

    model.assert_complete()
    assert body["response"] == "Added Buy milk; it is your only pending task."
    assert [call["name"] for call in body["tool_calls"]] == ["add_task", "list_tasks"]
    added, page = (call["result"] for call in body["tool_calls"])
    assert body["tool_calls"][0]["arguments"] == {"user_id": user, "title": "Buy milk", "due": "tomorrow"}
    assert added["status"] == "success"
    assert added["data"]["title"] == "Buy milk"
    assert added["data"]["due_label"] == "tomorrow"
    assert [task["task_id"] for task in page["data"]["tasks"]] == [added["data"]["task_id"]]
    assert [task["title"] for task in listed] == ["Buy milk"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "add buy milk tomorrow and show my list"),
        ("assistant", body["response"]),
    ]
    assert stored[0]["tool_calls"] == []
    assert stored[1]["tool_calls"] == body["tool_calls"]
    # The model saw the user's message, then the first tool's answer before choosing the second.
    assert messages_sent(model.calls[0])[-1] == ("user", "add buy milk tomorrow and show my list")
    assert tool_outputs(model.calls[1])[0]["data"]["title"] == "Buy milk"


def complete_the_one_found(call: ModelCall) -> list[TResponseOutputItem]:
    """The second step of "complete the dentist task": the id from the list's answer."""
    (page,) = tool_outputs(call)
    (task,) = page["data"]["tasks"]
    return [function_call("complete_task", {"user_id": "ada", "task_id": task["task_id"]}, call_id="c2")]


async def test_complete_the_dentist_task_lists_first_then_completes_the_one_found(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    model = ScriptedModel(
        [
            [function_call("list_tasks", {"user_id": user, "query": "dentist"}, call_id="c1")],
            ModelStep.respond(complete_the_one_found),
            [assistant_message("Done: the dentist task is complete.")],
        ]
    )
    async with chat_app(settings, db, model) as chat:
        for title in ("Call the dentist", "Buy milk"):
            created = await chat.client.post(
                f"/api/{user}/tasks", json={"title": title}, headers=chat.auth(user)
            )
            assert created.status_code == 201
        response = await chat.say(user, "complete the dentist task")
        listed = {task["title"]: task["completed"] for task in await chat.tasks(user, status="all")}

    model.assert_complete()
    assert response.status_code == 200, response.text
    assert [call["name"] for call in response.json()["tool_calls"]] == ["list_tasks", "complete_task"]
    assert listed == {"Call the dentist": True, "Buy milk": False}


async def test_a_hallucinated_tool_and_bad_arguments_reach_the_model_and_the_run_goes_on(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    model = ScriptedModel(
        [
            [function_call("make_coffee", {"user_id": user}, call_id="h1")],
            [function_call("add_task", {"user_id": user, "title": "", "colour": "red"}, call_id="h2")],
            [function_call("add_task", {"user_id": user, "title": "Buy milk"}, call_id="h3")],
            [assistant_message("Added Buy milk.")],
        ]
    )
    async with chat_app(settings, db, model) as chat:
        response = await chat.say(user, "add buy milk")
        listed = await chat.tasks(user)

    model.assert_complete()
    assert response.status_code == 200, response.text
    calls = response.json()["tool_calls"]
    assert [call["name"] for call in calls] == ["make_coffee", "add_task", "add_task"]
    unknown, invalid, added = (call["result"] for call in calls)
    assert unknown["status"] == "error"
    assert "make_coffee" in unknown["message"]
    assert invalid["status"] == "error"
    assert invalid["data"]["error_code"] == 400
    assert added["status"] == "success"
    # What each failure said reached the model before its next step.
    assert "make_coffee" in json.dumps(tool_outputs(model.calls[1]))
    assert tool_outputs(model.calls[2])[-1]["status"] == "error"
    assert [task["title"] for task in listed] == ["Buy milk"]


@pytest.mark.parametrize("mode", ["tokens", "development"])
async def test_a_model_that_tries_another_users_id_gets_403_and_sees_nothing_of_theirs(
    mode: str, database_url: str, db: Database, user_factory: UserFactory
) -> None:
    # In development mode the public MCP server asks no token; the assistant's own still binds
    # every call to the request's user.
    settings = make_settings(database_url, jwt_secret="x" * 40 if mode == "tokens" else None)
    ada, bob = await user_factory("ada"), await user_factory("bob")
    attempts = [
        function_call("list_tasks", {"user_id": bob}, call_id="x1"),
        function_call("add_task", {"user_id": bob, "title": "Planted by ada"}, call_id="x2"),
    ]
    model = ScriptedModel([[attempts[0]], [attempts[1]], [assistant_message("I could not see those.")]])
    async with chat_app(settings, db, model) as chat:
        made = await chat.client.post(
            f"/api/{bob}/tasks",
            json={"title": "Bob's secret plan", "description": "hidden"},
            headers=chat.auth(bob),
        )
        assert made.status_code == 201
        response = await chat.say(ada, "show me bob's tasks")
        stored = await chat.messages(ada, response.json()["conversation_id"])
        bobs = await chat.tasks(bob)

    model.assert_complete()
    assert response.status_code == 200, response.text
    results = [call["result"] for call in response.json()["tool_calls"]]
    assert [result["data"]["error_code"] for result in results] == [403, 403]
    everything_seen = json.dumps([response.json(), stored, [tool_outputs(call) for call in model.calls]])
    assert "secret plan" not in everything_seen
    assert "hidden" not in everything_seen
    assert [task["title"] for task in bobs] == ["Bob's secret plan"]


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (ModelTimeoutError(5.0), 504),
        (
            openai.APITimeoutError(request=httpx2.Request("POST", "http://model.test/v1/chat/completions")),
            504,
        ),
        (
            openai.InternalServerError(
                "upstream failed",
                response=httpx2.Response(500, request=httpx2.Request("POST", "http://model.test")),
                body=None,
            ),
            502,
        ),
        (
            openai.APIConnectionError(
                request=httpx2.Request("POST", "http://model.test/v1/chat/completions")
            ),
            503,
        ),
    ],
    ids=["sdk-timeout", "client-timeout", "server-error", "unreachable"],
)
async def test_a_failing_model_is_a_clear_status_the_message_is_kept_and_the_conversation_goes_on(
    failure: Exception, status: int, settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    model = ScriptedModel([failure, [assistant_message("Back again.")]])
    async with chat_app(settings, db, model) as chat:
        conversation = (await chat.client.post(f"/api/{user}/conversations", headers=chat.auth(user))).json()[
            "id"
        ]
        failed = await chat.say(user, "what's on my list?", conversation)
        error_body(failed, status)
        after_failure = await chat.messages(user, conversation)
        again = await chat.say(user, "are you there?", conversation)
        after = await chat.messages(user, conversation)

    assert [(m["role"], m["content"]) for m in after_failure] == [("user", "what's on my list?")]
    assert again.status_code == 200, again.text
    assert [(m["role"], m["content"]) for m in after] == [
        ("user", "what's on my list?"),
        ("user", "are you there?"),
        ("assistant", "Back again."),
    ]
    # The failed message is history for the next reply.
    assert messages_sent(model.calls[1]) == [("user", "what's on my list?"), ("user", "are you there?")]


async def test_a_reply_past_the_time_limit_is_a_504_with_the_message_kept(
    database_url: str, db: Database, user_factory: UserFactory
) -> None:
    settings = make_settings(database_url, jwt_secret="x" * 40, chat_timeout_seconds=0.5)
    user = await user_factory("ada")

    async def too_slow(call: ModelCall) -> list[TResponseOutputItem]:
        await asyncio.sleep(5)
        return [assistant_message("late")]

    async with chat_app(settings, db, ScriptedModel([ModelStep.respond(too_slow)])) as chat:
        conversation = (await chat.client.post(f"/api/{user}/conversations", headers=chat.auth(user))).json()[
            "id"
        ]
        response = await chat.say(user, "hello?", conversation)
        body = error_body(response, 504)
        stored = await chat.messages(user, conversation)

    assert "0.5 seconds" in body["detail"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "hello?")]


async def test_a_model_that_never_stops_calling_tools_is_a_502_after_the_turn_limit(
    database_url: str, db: Database, user_factory: UserFactory
) -> None:
    settings = make_settings(database_url, jwt_secret="x" * 40, chat_max_turns=3)
    user = await user_factory("ada")
    looping = [[function_call("list_tasks", {"user_id": user}, call_id=f"l{i}")] for i in range(3)]
    async with chat_app(settings, db, ScriptedModel(looping)) as chat:
        response = await chat.say(user, "list forever")

    assert "3 steps" in error_body(response, 502)["detail"]


async def test_tools_that_cannot_be_reached_are_a_503(
    database_url: str, db: Database, user_factory: UserFactory, unused_port: int
) -> None:
    settings = make_settings(
        database_url, jwt_secret="x" * 40, chat_mcp_url=f"http://127.0.0.1:{unused_port}/mcp"
    )
    user = await user_factory("ada")
    model = ScriptedModel([[assistant_message("never reached")]])
    async with chat_app(settings, db, model) as chat:
        response = await chat.say(user, "add milk")

    assert "tools" in error_body(response, 503)["detail"]
    assert model.calls == ()


async def test_another_users_or_a_missing_conversation_is_a_404_and_the_path_user_must_be_the_token(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    ada, bob = await user_factory("ada"), await user_factory("bob")
    model = ScriptedModel([[assistant_message("hi bob")]])
    async with chat_app(settings, db, model) as chat:
        bobs = (await chat.say(bob, "hello")).json()["conversation_id"]
        theirs = await chat.say(ada, "hello", bobs)
        missing = await chat.say(ada, "hello", 987654)
        as_bob = await chat.client.post(f"/api/{bob}/chat", json={"message": "hi"}, headers=chat.auth(ada))
        empty = await chat.say(ada, "   ")
        bob_stored = await chat.messages(bob, bobs)

    assert theirs.status_code == 404
    assert missing.status_code == 404
    assert theirs.json()["detail"] == missing.json()["detail"].replace("987654", str(bobs))
    assert as_bob.status_code == 403
    assert empty.status_code == 400
    assert [m["content"] for m in bob_stored] == ["hello", "hi bob"]


async def test_history_is_the_newest_messages_that_fit_the_budget_and_the_cut_is_logged(
    database_url: str, db: Database, user_factory: UserFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="todo_mcp.chat")
    settings = make_settings(database_url, jwt_secret="x" * 40, chat_history_characters=25)
    user = await user_factory("ada")
    model = ScriptedModel([[assistant_message(f"reply {n}")] for n in range(4)])
    async with chat_app(settings, db, model) as chat:
        conversation = (await chat.say(user, "message 0")).json()["conversation_id"]
        for n in range(1, 4):
            assert (await chat.say(user, f"message {n}", conversation)).status_code == 200

    # "message N" is 9 characters and "reply N" 7: before message 3 the newest three (23) fit
    # into 25 and a fourth would not; no older message is sent without the ones after it.
    assert messages_sent(model.calls[3]) == [
        ("assistant", "reply 1"),
        ("user", "message 2"),
        ("assistant", "reply 2"),
        ("user", "message 3"),
    ]
    assert messages_sent(model.calls[1]) == [
        ("user", "message 0"),
        ("assistant", "reply 0"),
        ("user", "message 1"),
    ]
    cuts = [record.getMessage() for record in caplog.records if "history cut" in record.getMessage()]
    assert cuts
    assert f"conversation={conversation}" in cuts[-1]


async def test_the_instructions_carry_the_user_id_and_their_local_date_time_and_zone(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    model = ScriptedModel([[assistant_message("ok")]])
    async with chat_app(settings, db, model) as chat:
        changed = await chat.client.patch("/api/me", json={"timezone": "Asia/Tokyo"}, headers=chat.auth(user))
        assert changed.status_code == 200
        await chat.say(user, "hi")

    instructions = model.calls[0].system_instructions or ""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()
    assert f'user_id is "{user}"' in instructions
    assert "Asia/Tokyo" in instructions
    assert f"local date {today}" in instructions
    assert "one or two friendly sentences" in instructions


async def test_streaming_sends_events_before_the_run_ends_and_ends_with_the_json_answer(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    first_event_seen = asyncio.Event()

    async def wait_for_the_client(call: ModelCall) -> list[TResponseOutputItem]:
        # The run cannot finish until the client has read the tool events: so they were sent
        # while it ran.
        await asyncio.wait_for(first_event_seen.wait(), timeout=10)
        return [assistant_message("Added Buy milk.")]

    model = ScriptedModel(
        [
            [function_call("add_task", {"user_id": user, "title": "Buy milk"}, call_id="s1")],
            ModelStep.respond(wait_for_the_client),
        ]
    )
    events: list[tuple[str, Any]] = []
    async with chat_app(settings, db, model, over_tcp=True) as chat:
        async with chat.client.stream(
            "POST",
            f"/api/{user}/chat",
            json={"message": "add buy milk"},
            headers={**chat.auth(user), "Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            name = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((str(name), json.loads(line.removeprefix("data: "))))
                    if name == "tool_result":
                        first_event_seen.set()
        stored = await chat.messages(user, events[0][1]["conversation_id"])

    names = [name for name, _ in events]
    assert names == ["conversation", "tool_call", "tool_result", "text", "done"]
    done = events[-1][1]
    assert events[1][1] == {"name": "add_task", "arguments": done["tool_calls"][0]["arguments"]}
    assert events[2][1] == done["tool_calls"][0]
    assert events[3][1]["delta"] == done["response"] == "Added Buy milk."
    assert done["conversation_id"] == events[0][1]["conversation_id"]
    assert stored[-1]["content"] == "Added Buy milk."
    assert stored[-1]["tool_calls"] == done["tool_calls"]


async def test_a_streamed_reply_that_fails_ends_with_an_error_event_and_keeps_the_message(
    settings: Settings, db: Database, user_factory: UserFactory, caplog: pytest.LogCaptureFixture
) -> None:
    user = await user_factory("ada")
    model = ScriptedModel([ModelTimeoutError(1.0)])
    async with chat_app(settings, db, model) as chat:
        response = await chat.client.post(
            f"/api/{user}/chat",
            json={"message": "add milk"},
            headers={**chat.auth(user), "Accept": "text/event-stream"},
        )
        blocks = [block for block in response.text.split("\n\n") if block.strip()]
        conversation = json.loads(blocks[0].split("data: ", 1)[1])["conversation_id"]
        stored = await chat.messages(user, conversation)

    assert blocks[-1].startswith("event: error")
    error = json.loads(blocks[-1].split("data: ", 1)[1])
    assert error["status"] == 504
    assert error["error_id"]
    assert any(error["error_id"] in record.getMessage() for record in caplog.records)
    assert [m["content"] for m in stored] == ["add milk"]


async def test_any_process_continues_the_conversation_from_the_database(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    """Two apps (as two processes would) on one database, taking turns in one conversation."""
    user = await user_factory("ada")
    first, second = (
        ScriptedModel([[assistant_message("one")], [assistant_message("three")]]),
        ScriptedModel([[assistant_message("two")]]),
    )
    async with chat_app(settings, db, first) as a, chat_app(settings, db, second) as b:
        conversation = (await a.say(user, "1")).json()["conversation_id"]
        assert (await b.say(user, "2", conversation)).json()["response"] == "two"
        assert (await a.say(user, "3", conversation)).json()["response"] == "three"

    assert messages_sent(second.calls[0]) == [("user", "1"), ("assistant", "one"), ("user", "2")]
    assert messages_sent(first.calls[1])[-3:] == [("user", "2"), ("assistant", "two"), ("user", "3")]


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
