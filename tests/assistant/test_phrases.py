"""The offline model's reading of messages, on its own: the edges of dates, times and names."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest

from todo_mcp.assistant.phrases import AddTask, ChangeTask, Chat, Choice, ListTasks, TaskRef, pick, understand

TODAY = date(2026, 12, 2)


@pytest.mark.parametrize(
    ("message", "due"),
    [
        ("add run at 7am", "today 07:00"),
        ("add run at 7", "today 19:00"),  # a bare hour of 1-7 is the afternoon
        ("add run at 9", "today 09:00"),
        ("add run at 12am", "today 00:00"),
        ("add run at 12pm", "today 12:00"),
        ("add lunch tomorrow at noon", "tomorrow 12:00"),
        ("add call on thu 5:45pm", "thursday 17:45"),
        ("add review next friday", "friday"),
        ("add trip in two weeks", "in 14 days"),
        ("add party the day after tomorrow", "in 2 days"),
        ("add gift on january 5", "2027-01-05"),  # past this year's: next year's
        ("add gift on 24th december", "2026-12-24"),
        ("add taxes by 2026-12-31 at 23:59", "2026-12-31 23:59"),
    ],
)
def test_dates_and_times_become_the_words_the_tools_read(message: str, due: str) -> None:
    request = understand(message, TODAY)
    assert isinstance(request, AddTask)
    assert request.due == due


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("add dinner at home", "Dinner at home"),  # "at home" is no time
        ("add buy 2 apples", "Buy 2 apples"),
        ("add gift on february 30", "Gift on february 30"),  # no such day: left in the title
        ("remind me to call Ada", "Call Ada"),
        ("add 'Read \u201cDune\u201d' to my list", "Read \u201cDune"),
    ],
)
def test_what_is_not_a_date_stays_in_the_title(message: str, title: str) -> None:
    request = understand(message, TODAY)
    assert isinstance(request, AddTask)
    assert request.title == title
    assert request.due is None


def test_questions_are_never_read_as_changes_to_a_task_named_like_the_question() -> None:
    assert understand("what is due today?", TODAY) == ListTasks(due="today")
    assert understand("is anything overdue?", TODAY) == ListTasks(due="overdue")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("the first one", Choice(position=0)),
        ("3", Choice(position=2)),
        ("the last one", Choice(position=-1)),
        ("#42", Choice(task_id=42)),
        ("task #42", Choice(task_id=42)),
    ],
)
def test_answers_to_which_one(message: str, expected: Choice) -> None:
    assert understand(message, TODAY) == expected


def test_a_task_named_by_id_or_by_words() -> None:
    assert understand("delete task 12", TODAY) == ChangeTask(action="delete", target=TaskRef(task_id=12))
    assert understand("delete the 'tax return' task", TODAY) == ChangeTask(
        action="delete", target=TaskRef(words="tax return")
    )


def test_unknown_requests_are_said_to_be_unknown() -> None:
    for message in ("what is the meaning of life", "sing me a song", "", "   ", "!!!"):
        assert understand(message, TODAY) == Chat("unknown"), message


def test_pick_prefers_an_exact_title_then_the_most_words() -> None:
    tasks: list[dict[str, object]] = [
        {"task_id": 1, "title": "Call the dentist"},
        {"task_id": 2, "title": "Dentist invoice", "description": "pay the dentist"},
        {"task_id": 3, "title": "Dentist"},
    ]
    assert [task["task_id"] for task in pick(tasks, "dentist")] == [3]
    assert [task["task_id"] for task in pick(tasks, "the dentist invoice")] == [2]
    assert [task["task_id"] for task in pick(tasks, "call dentist")] == [1]
    assert pick(tasks, "yoga") == []


@pytest.mark.parametrize(
    "message",
    [
        "add a" + "," * 60 + "b",  # the old trailing-punctuation pattern took minutes on this
        "add a" + ", ;:" * 40,
        "add x" + " and" * 3000,
        "move " + "x to " * 3000,
        "mark " + "x as " * 3000,
        "add x with labels " + "a, " * 3000,
        "please, " * 2000 + "add x",
        "find " + "tasks about " * 2000 + "x",
    ],
    ids=["commas", "punctuation", "ands", "tos", "ases", "labels", "polite", "query"],
)
def test_no_message_makes_the_reading_hang(message: str) -> None:
    # A guard against catastrophic backtracking, not a measurement: the bound is a hundred times
    # what these take, and the patterns that were exponential never finish within it.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(understand, message, TODAY).result(timeout=10)
    finally:
        # Not waiting: a reading that hangs must fail the test, not hold it.
        pool.shutdown(wait=False, cancel_futures=True)
