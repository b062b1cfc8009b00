"""The task routes over REST, on SQLite and PostgreSQL: what each does with a valid token, and that
no token, a bad token, another user's path or another user's task gets nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import pytest

from tests.api.conftest import (
    BAD_CREDENTIALS,
    BASE_URL,
    JWT_SECRET,
    OTHER_SECRET,
    assert_client_error,
    assert_unauthenticated,
    bearer,
    now,
    signed,
)
from tests.conftest import UserFactory, make_settings
from todo_mcp.api.app import build_api_app
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database

pytestmark = pytest.mark.anyio

AuthFor = Callable[[str], dict[str, str]]
TASK_KEYS: Final = {
    *("id", "user_id", "title", "description", "completed", "created_at", "updated_at"),
    *("due_date", "due_time", "due_label", "priority", "labels", "completed_at"),
}

# Every route that names one task, as (method, path suffix after the task id, JSON body or None).
TASK_ROUTES: Final[dict[str, tuple[str, str, dict[str, Any] | None]]] = {
    "get": ("GET", "", None),
    "put": ("PUT", "", {"title": "Taken over"}),
    "delete": ("DELETE", "", None),
    "patch complete": ("PATCH", "/complete", None),
}
# Every task route, with the task id to put in its path ("{task}") or none.
ALL_ROUTES: Final[dict[str, tuple[str, str, dict[str, Any] | None]]] = {
    "list": ("GET", "", None),
    "create": ("POST", "", {"title": "Buy milk"}),
    **{name: (method, "/{task}" + suffix, body) for name, (method, suffix, body) in TASK_ROUTES.items()},
}


def tasks_url(user_id: str, task_id: int | str | None = None, suffix: str = "") -> str:
    base = f"/api/{user_id}/tasks"
    return base if task_id is None else f"{base}/{task_id}{suffix}"


async def create(
    client: httpx.AsyncClient, auth: dict[str, str], user_id: str, title: str, description: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title}
    if description is not None:
        body["description"] = description
    response = await client.post(tasks_url(user_id), json=body, headers=auth)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    # Only a retry with the same client_request_id is deduplicated; the rest is the task as listed.
    assert task.pop("deduplicated") is False
    return task


async def call_route(
    client: httpx.AsyncClient,
    route: tuple[str, str, dict[str, Any] | None],
    user_id: str,
    task_id: int,
    headers: dict[str, str],
) -> httpx.Response:
    method, path, body = route
    url = tasks_url(user_id) + path.replace("{task}", str(task_id))
    return await client.request(method, url, json=body, headers=headers)


async def get_task(client: httpx.AsyncClient, auth: dict[str, str], user_id: str, task_id: int) -> Any:
    response = await client.get(tasks_url(user_id, task_id), headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


# --- the routes with a valid token -----------------------------------------------------------


async def test_create_returns_the_stored_task_with_a_stripped_title(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()

    response = await client.post(
        tasks_url(user), json={"title": "  Buy milk \n", "description": "2 litres"}, headers=auth_for(user)
    )

    assert response.status_code == 201, response.text
    task = response.json()
    assert task.pop("deduplicated") is False
    assert set(task) == TASK_KEYS
    assert isinstance(task["id"], int)
    assert task["user_id"] == user
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 litres"
    assert task["completed"] is False
    created_at = datetime.fromisoformat(task["created_at"])
    assert created_at.utcoffset() == timedelta(0)
    assert abs((now() - created_at).total_seconds()) < 60
    assert datetime.fromisoformat(task["updated_at"]) >= created_at
    assert await get_task(client, auth_for(user), user, task["id"]) == task


async def test_create_without_a_description_stores_none(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()

    task = await create(client, auth_for(user), user, "Buy milk")

    assert task["description"] is None


async def test_list_returns_the_users_tasks_oldest_first_filtered_by_status(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user, other = await user_factory(), await user_factory()
    auth = auth_for(user)
    first = await create(client, auth, user, "First")
    second = await create(client, auth, user, "Second")
    third = await create(client, auth, user, "Third")
    await create(client, auth_for(other), other, "Not mine")
    done = await client.patch(tasks_url(user, second["id"], "/complete"), headers=auth)
    assert done.status_code == 200, done.text

    listed: dict[str, list[int]] = {}
    for status in ("all", "pending", "completed"):
        response = await client.get(tasks_url(user), params={"status": status}, headers=auth)
        assert response.status_code == 200, response.text
        listed[status] = [task["id"] for task in response.json()["tasks"]]
    default = await client.get(tasks_url(user), headers=auth)

    assert listed == {
        "all": [first["id"], second["id"], third["id"]],
        "pending": [first["id"], third["id"]],
        "completed": [second["id"]],
    }
    assert [task["id"] for task in default.json()["tasks"]] == listed["all"]


async def test_list_of_a_user_without_tasks_is_empty(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()

    response = await client.get(tasks_url(user), headers=auth_for(user))

    assert response.status_code == 200, response.text
    assert response.json()["tasks"] == []
    assert response.json()["total"] == 0


async def test_list_with_an_unknown_status_is_a_422(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()

    response = await client.get(tasks_url(user), params={"status": "done"}, headers=auth_for(user))

    assert response.status_code == 422, response.text


async def test_put_changes_the_title_and_keeps_the_rest(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk", "2 litres")

    response = await client.put(tasks_url(user, task["id"]), json={"title": " Buy oat milk "}, headers=auth)

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["title"] == "Buy oat milk"
    assert updated["description"] == "2 litres"
    assert updated["completed"] is False
    assert updated["id"] == task["id"]
    assert updated["created_at"] == task["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) >= datetime.fromisoformat(task["updated_at"])
    assert await get_task(client, auth, user, task["id"]) == updated


async def test_put_with_an_empty_description_clears_it(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk", "2 litres")

    response = await client.put(tasks_url(user, task["id"]), json={"description": ""}, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["description"] is None
    assert response.json()["title"] == "Buy milk"
    assert (await get_task(client, auth, user, task["id"]))["description"] is None


async def test_put_sets_completion_both_ways(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk")

    completed = await client.put(tasks_url(user, task["id"]), json={"completed": True}, headers=auth)
    reopened = await client.put(
        tasks_url(user, task["id"]), json={"completed": False, "title": "Buy more milk"}, headers=auth
    )

    assert completed.status_code == 200, completed.text
    assert completed.json()["completed"] is True
    assert completed.json()["title"] == "Buy milk"
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["completed"] is False
    assert reopened.json()["title"] == "Buy more milk"


@pytest.mark.parametrize(
    "body",
    [{}, {"title": None}, {"title": None, "description": None, "completed": None}],
    ids=["empty", "null title", "all null"],
)
async def test_put_with_nothing_to_change_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, body: dict[str, Any]
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk")

    response = await client.put(tasks_url(user, task["id"]), json=body, headers=auth)

    assert_client_error(response, 400, "title", "description", "completed")
    assert response.json()["error_id"] is None
    assert await get_task(client, auth, user, task["id"]) == task


async def test_delete_is_204_and_then_the_task_is_gone(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk")
    kept = await create(client, auth, user, "Keep me")

    deleted = await client.delete(tasks_url(user, task["id"]), headers=auth)
    after = await client.get(tasks_url(user, task["id"]), headers=auth)
    again = await client.delete(tasks_url(user, task["id"]), headers=auth)
    remaining = await client.get(tasks_url(user), headers=auth)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_client_error(after, 404, f"Task {task['id']}")
    assert_client_error(again, 404, f"Task {task['id']}")
    assert [item["id"] for item in remaining.json()["tasks"]] == [kept["id"]]


async def test_patch_complete_without_a_body_toggles_and_toggles_back(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk")
    url = tasks_url(user, task["id"], "/complete")

    first = await client.patch(url, headers=auth)
    second = await client.patch(url, headers=auth)

    assert first.status_code == 200, first.text
    assert first.json()["completed"] is True
    assert second.status_code == 200, second.text
    assert second.json()["completed"] is False
    assert (await get_task(client, auth, user, task["id"]))["completed"] is False


@pytest.mark.parametrize("body", [{}, {"completed": None}], ids=["empty object", "null completed"])
async def test_patch_complete_with_a_body_without_completed_toggles(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, body: dict[str, Any]
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk")
    url = tasks_url(user, task["id"], "/complete")

    first = await client.patch(url, json=body, headers=auth)
    second = await client.patch(url, json=body, headers=auth)

    assert first.status_code == 200, first.text
    assert first.json()["completed"] is True
    assert second.json()["completed"] is False


@pytest.mark.parametrize("state", [True, False])
async def test_patch_complete_with_a_state_sets_it_and_repeating_it_keeps_it(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, state: bool
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk")
    url = tasks_url(user, task["id"], "/complete")
    if not state:
        assert (await client.patch(url, json={"completed": True}, headers=auth)).status_code == 200

    first = await client.patch(url, json={"completed": state}, headers=auth)
    second = await client.patch(url, json={"completed": state}, headers=auth)

    assert first.status_code == 200, first.text
    assert first.json()["completed"] is state
    assert second.status_code == 200, second.text
    assert second.json()["completed"] is state
    # Setting the state it already has is not a change.
    assert second.json()["updated_at"] == first.json()["updated_at"]
    assert (await get_task(client, auth, user, task["id"]))["completed"] is state


# --- credentials ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", list(ALL_ROUTES))
@pytest.mark.parametrize("kind", ["missing", "expired", "forged", "malformed"])
async def test_every_task_route_without_valid_credentials_is_401_and_changes_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, route: str, kind: str
) -> None:
    user = await user_factory()
    task = await create(client, auth_for(user), user, "Buy milk")

    response = await call_route(client, ALL_ROUTES[route], user, task["id"], BAD_CREDENTIALS[kind](user))

    assert_unauthenticated(response)
    listed = await client.get(tasks_url(user), headers=auth_for(user))
    assert listed.json()["tasks"] == [task]


@pytest.mark.parametrize("route", list(ALL_ROUTES))
async def test_every_task_route_on_another_users_path_is_403_and_changes_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, route: str
) -> None:
    owner, intruder = await user_factory(), await user_factory()
    task = await create(client, auth_for(owner), owner, "Buy milk")

    response = await call_route(client, ALL_ROUTES[route], owner, task["id"], auth_for(intruder))

    assert_client_error(response, 403, "different user")
    assert response.json()["error_id"] is None
    listed = await client.get(tasks_url(owner), headers=auth_for(owner))
    assert listed.json()["tasks"] == [task]


@pytest.mark.parametrize("route", list(TASK_ROUTES))
async def test_another_users_task_id_is_404_like_a_task_that_never_existed(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, route: str
) -> None:
    owner, other = await user_factory(), await user_factory()
    task = await create(client, auth_for(owner), owner, "Buy milk")
    never_existed = task["id"] + 1000

    theirs = await call_route(client, ALL_ROUTES[route], other, task["id"], auth_for(other))
    missing = await call_route(client, ALL_ROUTES[route], other, never_existed, auth_for(other))

    assert theirs.status_code == missing.status_code == 404, (theirs.text, missing.text)
    assert theirs.headers.get("content-type") == missing.headers.get("content-type")
    # The same answer apart from the number: nothing tells the two apart.
    theirs_body = re.sub(r"\d+", "N", theirs.text)
    missing_body = re.sub(r"\d+", "N", missing.text)
    assert theirs_body == missing_body
    assert str(task["id"]) in theirs.json()["detail"]
    assert await get_task(client, auth_for(owner), owner, task["id"]) == task


async def test_a_valid_token_for_a_user_that_does_not_exist_is_404_for_the_user(
    client: httpx.AsyncClient, auth_for: AuthFor
) -> None:
    response = await client.get(tasks_url("ghost"), headers=auth_for("ghost"))
    created = await client.post(tasks_url("ghost"), json={"title": "Boo"}, headers=auth_for("ghost"))

    assert_client_error(response, 404, "ghost")
    assert_client_error(created, 404, "ghost")


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "200"),
        ({"title": "ok", "description": "d" * 1001}, "1000"),
        ({"title": "a\x00b"}, "NUL"),
        ({"title": "ok", "description": "a\x00b"}, "NUL"),
    ],
    ids=["empty title", "blank title", "201-char title", "1001-char description", "NUL title", "NUL desc"],
)
async def test_create_with_an_invalid_field_is_a_400_naming_the_problem(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, body: dict[str, Any], word: str
) -> None:
    user = await user_factory()

    response = await client.post(tasks_url(user), json=body, headers=auth_for(user))

    assert_client_error(response, 400, word)
    assert (await client.get(tasks_url(user), headers=auth_for(user))).json()["tasks"] == []


async def test_create_accepts_a_200_char_title_and_a_1000_char_description(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()

    task = await create(client, auth_for(user), user, "t" * 200, "d" * 1000)

    assert len(task["title"]) == 200
    assert len(task["description"]) == 1000


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "200"),
        ({"description": "d" * 1001}, "1000"),
        ({"title": "a\x00b"}, "NUL"),
    ],
    ids=["empty title", "201-char title", "1001-char description", "NUL title"],
)
async def test_put_with_an_invalid_field_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, body: dict[str, Any], word: str
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk")

    response = await client.put(tasks_url(user, task["id"]), json={**body, "completed": True}, headers=auth)

    assert_client_error(response, 400, word)
    assert await get_task(client, auth, user, task["id"]) == task


@pytest.mark.parametrize(
    ("method", "suffix", "content"),
    [
        ("POST", "", b"not json"),
        ("POST", "", b'{"title": "unterminated'),
        ("POST", "", b"[]"),
        ("POST", "", b'"a string"'),
        ("POST", "", b'{"title": 123}'),
        ("POST", "", b'{"title": ["a"]}'),
        ("POST", "", b'{"title": "ok", "description": 5}'),
        ("POST", "", b'{"description": "no title"}'),
        ("PUT", "/{task}", b"not json"),
        ("PUT", "/{task}", b'{"completed": "maybe"}'),
        ("PUT", "/{task}", b'{"title": {"nested": true}}'),
        ("PATCH", "/{task}/complete", b"not json"),
        ("PATCH", "/{task}/complete", b'{"completed": "maybe"}'),
        ("PATCH", "/{task}/complete", b"[true]"),
    ],
)
async def test_a_body_that_is_not_the_schema_is_a_422_with_details(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    auth_for: AuthFor,
    method: str,
    suffix: str,
    content: bytes,
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    task = await create(client, auth, user, "Buy milk")
    url = tasks_url(user) + suffix.replace("{task}", str(task["id"]))

    response = await client.request(
        method, url, content=content, headers={**auth, "Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    body = response.json()
    assert isinstance(body["detail"], str)
    assert isinstance(body["error_id"], str)
    assert body["problems"]
    assert all(problem["field"].startswith("body") and problem["message"] for problem in body["problems"])
    assert await get_task(client, auth, user, task["id"]) == task


@pytest.mark.parametrize("task_id", ["abc", "1.5", "1e3", "one"])
@pytest.mark.parametrize("route", list(TASK_ROUTES))
async def test_a_task_id_that_is_not_an_integer_is_a_422(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, route: str, task_id: str
) -> None:
    user = await user_factory()
    method, suffix, body = TASK_ROUTES[route]

    response = await client.request(
        method, tasks_url(user, task_id, suffix), json=body, headers=auth_for(user)
    )

    assert response.status_code == 422, response.text
    assert "task_id" in str(response.json()["detail"])


@pytest.mark.parametrize("task_id", [0, -1, 2**63, 2**70], ids=["0", "-1", "2^63", "2^70"])
@pytest.mark.parametrize("route", list(TASK_ROUTES))
async def test_a_task_id_outside_the_id_range_is_a_400_naming_task_id(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, route: str, task_id: int
) -> None:
    user = await user_factory()
    method, suffix, body = TASK_ROUTES[route]

    response = await client.request(
        method, tasks_url(user, task_id, suffix), json=body, headers=auth_for(user)
    )

    assert_client_error(response, 400, "task_id")


@pytest.mark.parametrize("task_id", [2**31, 2**63 - 1], ids=["2^31", "2^63-1"])
@pytest.mark.parametrize("route", list(TASK_ROUTES))
async def test_a_large_task_id_that_names_no_task_is_404_never_a_server_error(
    client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor, route: str, task_id: int
) -> None:
    """Ids are 64-bit integers (DESIGN: task ids are integers; the service accepts up to 2^63-1)."""
    user = await user_factory()
    method, suffix, body = TASK_ROUTES[route]

    response = await client.request(
        method, tasks_url(user, task_id, suffix), json=body, headers=auth_for(user)
    )

    assert_client_error(response, 404, f"Task {task_id}")


# --- BETTER_AUTH_SECRET ---------------------------------------------------------------------


async def test_better_auth_secret_is_accepted_in_place_of_jwt_secret(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database, user_factory: UserFactory
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.setenv("BETTER_AUTH_SECRET", JWT_SECRET)
    settings = Settings(_env_file=None, database_url=database_url)
    app = build_api_app(settings, db, dispose_on_shutdown=False)
    user = await user_factory()
    # Signed the way the web app's auth signs: HS256 with the shared secret.
    token = signed({"sub": user, "iat": now(), "exp": now() + timedelta(hours=1)})
    forged = signed({"sub": user, "exp": now() + timedelta(hours=1)}, secret=OTHER_SECRET)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        accepted = await client.post(tasks_url(user), json={"title": "Buy milk"}, headers=bearer(token))
        refused = await client.get(tasks_url(user), headers=bearer(forged))
        listed = await client.get(tasks_url(user), headers=bearer(token))

    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == JWT_SECRET
    assert accepted.status_code == 201, accepted.text
    assert_unauthenticated(refused)
    assert [task["title"] for task in listed.json()["tasks"]] == ["Buy milk"]


# --- server errors --------------------------------------------------------------------------


async def test_an_unreachable_database_is_a_503_with_an_error_id_and_no_database_text() -> None:
    # Nothing listens on port 1: every connection attempt is refused at once.
    settings = make_settings(
        "postgresql://todo:secret-password@127.0.0.1:1/todo", jwt_secret=JWT_SECRET, database_pool_timeout=0.5
    )
    unreachable = Database.from_settings(settings)
    app = build_api_app(settings, unreachable, dispose_on_shutdown=False)
    headers = bearer(signed({"sub": "ada", "exp": now() + timedelta(hours=1)}))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=BASE_URL
        ) as client:
            response = await client.get(tasks_url("ada"), headers=headers)
    finally:
        await unreachable.dispose()

    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"detail", "error_id"}
    assert isinstance(body["error_id"], str)
    assert len(body["error_id"]) >= 8
    assert "try again" in body["detail"]
    for leak in ("secret-password", "127.0.0.1", "Connect", "Errno", "asyncpg"):
        assert leak not in response.text
