"""The planning fields and list filters over REST, through the same service as the tools."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import BASE_URL
from tests.clock import FrozenClock, at
from tests.conftest import UserFactory
from todo_mcp.api.app import build_api_app
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database

pytestmark = pytest.mark.anyio

AuthFor = Callable[[str], dict[str, str]]
PASSWORD = "correct horse battery"


@pytest.fixture
def clock() -> FrozenClock:
    return at("2026-12-01T22:00:00Z")


@pytest.fixture
async def rest(settings: Settings, db: Database, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api_app(settings, db, dispose_on_shutdown=False, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=BASE_URL
    ) as http:
        yield http


async def signed_up(rest: httpx.AsyncClient, email: str, timezone: str | None) -> tuple[str, dict[str, str]]:
    body: dict[str, Any] = {"email": email, "password": PASSWORD}
    if timezone is not None:
        body["timezone"] = timezone
    created = await rest.post("/auth/signup", json=body)
    assert created.status_code == 201, created.text
    login = await rest.post("/auth/login", json={"email": email, "password": PASSWORD})
    return created.json()["id"], {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_the_time_zone_is_set_at_sign_up_and_by_patch_me_and_decides_tomorrow(
    rest: httpx.AsyncClient,
) -> None:
    user, auth = await signed_up(rest, "kiri@example.com", "Pacific/Kiritimati")
    me = await rest.get("/api/me", headers=auth)
    assert me.json()["timezone"] == "Pacific/Kiritimati"

    east = await rest.post(f"/api/{user}/tasks", json={"title": "Call", "due": "tomorrow"}, headers=auth)
    moved = await rest.patch("/api/me", json={"timezone": "Pacific/Pago_Pago"}, headers=auth)
    west = await rest.post(f"/api/{user}/tasks", json={"title": "Call", "due": "tomorrow"}, headers=auth)

    assert moved.status_code == 200, moved.text
    assert moved.json()["timezone"] == "Pacific/Pago_Pago"
    assert (east.json()["due_date"], west.json()["due_date"]) == ("2026-12-03", "2026-12-02")
    listed = (await rest.get(f"/api/{user}/tasks", headers=auth)).json()
    assert (listed["today"], listed["timezone"]) == ("2026-12-01", "Pacific/Pago_Pago")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "CET+1", "", "utc\x00"])
async def test_an_unknown_time_zone_is_a_400_that_names_the_field_and_shows_a_valid_one(
    rest: httpx.AsyncClient, zone: str
) -> None:
    refused = await rest.post(
        "/auth/signup", json={"email": "z@example.com", "password": PASSWORD, "timezone": zone}
    )
    assert refused.status_code == 400, refused.text
    assert "timezone" in refused.json()["detail"]
    assert "Europe/Lisbon" in refused.json()["detail"]
    _, auth = await signed_up(rest, "ok@example.com", None)
    patched = await rest.patch("/api/me", json={"timezone": zone}, headers=auth)
    assert patched.status_code == 400, patched.text
    assert "Europe/Lisbon" in patched.json()["detail"]
    assert (await rest.get("/api/me", headers=auth)).json()["timezone"] == "UTC"


async def test_tasks_carry_the_planning_fields_and_lists_filter_sort_and_page(
    rest: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    url = f"/api/{user}/tasks"
    for body in [
        {"title": "Pay rent", "due": "2026-12-01", "priority": "high", "labels": ["home", "Money"]},
        {"title": "Call mum", "due": "tomorrow 18:30", "labels": ["family"]},
        {"title": "Invoice ACME", "description": "the Q4 invoice", "priority": "medium", "labels": ["money"]},
        {"title": "Someday", "priority": "low"},
    ]:
        created = await rest.post(url, json=body, headers=auth)
        assert created.status_code == 201, created.text
    rent = (await rest.get(url, params={"query": "rent"}, headers=auth)).json()["tasks"][0]
    assert {key: rent[key] for key in ("due_date", "due_time", "due_label", "priority", "labels")} == {
        "due_date": "2026-12-01",
        "due_time": None,
        "due_label": "today",
        "priority": "high",
        "labels": ["home", "Money"],
    }

    def titles(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return [task["title"] for task in answer.json()["tasks"]]

    assert titles(await rest.get(url, params={"labels": "MONEY"}, headers=auth)) == [
        "Pay rent",
        "Invoice ACME",
    ]
    assert titles(await rest.get(url, params=[("priority", "high"), ("priority", "low")], headers=auth)) == [
        "Pay rent",
        "Someday",
    ]
    assert titles(await rest.get(url, params={"due": "tomorrow"}, headers=auth)) == ["Call mum"]
    assert titles(await rest.get(url, params={"sort": "due"}, headers=auth)) == [
        "Pay rent",
        "Call mum",
        "Invoice ACME",
        "Someday",
    ]
    # Descending priority: no priority first, high last.
    assert titles(await rest.get(url, params={"sort": "priority", "order": "desc"}, headers=auth)) == [
        "Call mum",
        "Someday",
        "Invoice ACME",
        "Pay rent",
    ]

    first = (await rest.get(url, params={"limit": 3}, headers=auth)).json()
    assert (first["count"], first["total"]) == (3, 4)
    rest_of = (await rest.get(url, params={"limit": 3, "cursor": first["next_cursor"]}, headers=auth)).json()
    assert [task["title"] for task in rest_of["tasks"]] == ["Someday"]
    assert rest_of["next_cursor"] is None
    misused = await rest.get(
        url, params={"limit": 3, "cursor": first["next_cursor"], "sort": "due"}, headers=auth
    )
    assert misused.status_code == 400
    assert "cursor" in misused.json()["detail"]


async def test_a_retried_create_returns_the_first_task_and_put_reopens_and_clears(
    rest: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    url = f"/api/{user}/tasks"
    body = {"title": "Renew passport", "labels": ["admin"], "client_request_id": "5f0c7a1e"}
    first = await rest.post(url, json=body, headers=auth)
    retry = await rest.post(url, json=body, headers=auth)
    assert (first.status_code, retry.status_code) == (201, 200)
    assert (first.json()["deduplicated"], retry.json()["deduplicated"]) == (False, True)
    assert retry.json()["id"] == first.json()["id"]
    task_url = f"{url}/{first.json()['id']}"

    done = await rest.patch(f"{task_url}/complete", headers=auth)
    assert done.json()["completed_at"] is not None
    reopened = await rest.put(
        task_url, json={"completed": False, "labels": [], "due": "friday"}, headers=auth
    )
    assert reopened.status_code == 200, reopened.text
    assert {key: reopened.json()[key] for key in ("completed", "completed_at", "labels", "due_date")} == {
        "completed": False,
        "completed_at": None,
        "labels": [],
        "due_date": "2026-12-04",
    }
    assert (await rest.get(url, headers=auth)).json()["total"] == 1


@pytest.mark.parametrize(
    ("method", "suffix", "body", "params", "field"),
    [
        ("POST", "", {"title": "x", "due": "next month"}, None, "due"),
        ("POST", "", {"title": "x", "labels": ["x" * 41]}, None, "labels"),
        ("POST", "", {"title": "x", "client_request_id": "x" * 65}, None, "client_request_id"),
        ("GET", "", None, {"due_from": "someday"}, "due_from"),
        ("GET", "", None, {"due": "today", "due_to": "2026-12-31"}, "due"),
        ("GET", "", None, {"cursor": "not-a-cursor"}, "cursor"),
        ("GET", "", None, {"query": "q" * 201}, "query"),
    ],
)
async def test_bad_planning_input_is_a_400_naming_it_and_writes_nothing(
    rest: httpx.AsyncClient,
    user_factory: UserFactory,
    auth_for: AuthFor,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    params: dict[str, str] | None,
    field: str,
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    url = f"/api/{user}/tasks{suffix}"
    response = await rest.request(method, url, json=body, params=params, headers=auth)
    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]
    assert (await rest.get(f"/api/{user}/tasks", headers=auth)).json()["total"] == 0
