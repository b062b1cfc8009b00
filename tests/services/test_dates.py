"""Dates as agents send them, resolved in the user's time zone against one injected clock."""

from __future__ import annotations

from datetime import date

import pytest

from tests.clock import at
from todo_mcp.services.dates import (
    DUE_FORMS,
    Due,
    LocalNow,
    check_timezone,
    due_label,
    resolve_day,
    resolve_due,
)
from todo_mcp.services.errors import InvalidInput

# One instant: Tuesday 2026-12-01 22:00 UTC.
INSTANT = "2026-12-01T22:00:00Z"


def now_in(timezone: str, instant: str = INSTANT) -> LocalNow:
    return LocalNow.of(timezone, at(instant))


def test_the_same_instant_is_a_different_today_on_either_side_of_the_date_line() -> None:
    kiritimati, pago_pago = now_in("Pacific/Kiritimati"), now_in("Pacific/Pago_Pago")
    # UTC+14 is already Wednesday noon; UTC-11 is still Tuesday 11:00.
    assert (kiritimati.today, kiritimati.hhmm) == (date(2026, 12, 2), "12:00")
    assert (pago_pago.today, pago_pago.hhmm) == (date(2026, 12, 1), "11:00")
    assert resolve_due("today", kiritimati) == Due(date=date(2026, 12, 2))
    assert resolve_due("today", pago_pago) == Due(date=date(2026, 12, 1))
    assert resolve_due("tomorrow", kiritimati) == Due(date=date(2026, 12, 3))
    assert resolve_due("tomorrow", pago_pago) == Due(date=date(2026, 12, 2))


@pytest.mark.parametrize(
    ("instant", "timezone", "tomorrow"),
    [
        ("2026-12-01T23:59:00Z", "UTC", date(2026, 12, 2)),
        ("2026-12-02T00:00:00Z", "UTC", date(2026, 12, 3)),
        # 23:59 in Lisbon (winter, UTC+0) and 00:00 in Madrid (UTC+1) at the same instant.
        ("2026-12-01T23:30:00Z", "Europe/Lisbon", date(2026, 12, 2)),
        ("2026-12-01T23:30:00Z", "Europe/Madrid", date(2026, 12, 3)),
        ("2026-12-31T23:00:00Z", "Asia/Tokyo", date(2027, 1, 2)),
        ("2026-12-31T23:00:00Z", "America/New_York", date(2027, 1, 1)),
        ("2028-02-28T12:00:00Z", "UTC", date(2028, 2, 29)),
        ("2027-02-28T12:00:00Z", "UTC", date(2027, 3, 1)),
        ("2026-04-30T12:00:00Z", "UTC", date(2026, 5, 1)),
    ],
)
def test_tomorrow_is_the_users_next_calendar_day_near_midnight_and_month_and_year_ends(
    instant: str, timezone: str, tomorrow: date
) -> None:
    assert resolve_due("tomorrow", now_in(timezone, instant)).date == tomorrow


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 2026-12-01 is a Tuesday.
        ("wednesday", date(2026, 12, 2)),
        ("Monday", date(2026, 12, 7)),
        ("tuesday", date(2026, 12, 8)),  # the next one, never today
        ("  FRIDAY ", date(2026, 12, 4)),
        ("next week", date(2026, 12, 7)),
        ("in 0 days", date(2026, 12, 1)),
        ("in 1 day", date(2026, 12, 2)),
        ("in 31 days", date(2027, 1, 1)),
        ("in   3   days", date(2026, 12, 4)),
        ("2026-12-25", date(2026, 12, 25)),
        ("2028-02-29", date(2028, 2, 29)),
    ],
)
def test_words_and_dates_resolve_against_the_users_today(text: str, expected: date) -> None:
    assert resolve_due(text, now_in("UTC")) == Due(date=expected)


def test_next_week_on_a_monday_is_the_monday_after() -> None:
    monday = now_in("UTC", "2026-12-07T10:00:00Z")
    assert resolve_due("next week", monday).date == date(2026, 12, 14)
    assert resolve_due("monday", monday).date == date(2026, 12, 14)


@pytest.mark.parametrize(
    ("text", "timezone", "expected"),
    [
        ("2026-12-05T09:30", "Europe/Lisbon", Due(date=date(2026, 12, 5), time="09:30")),
        ("2026-12-05 09:30:59", "UTC", Due(date=date(2026, 12, 5), time="09:30")),
        # An offset is an instant: shown on the user's clock.
        ("2026-12-05T10:00:00-05:00", "Pacific/Kiritimati", Due(date=date(2026, 12, 6), time="05:00")),
        ("2026-12-05T23:30:00Z", "Asia/Tokyo", Due(date=date(2026, 12, 6), time="08:30")),
        ("2026-12-05T23:30:00+00:00", "America/Los_Angeles", Due(date=date(2026, 12, 5), time="15:30")),
        ("tomorrow 09:30", "UTC", Due(date=date(2026, 12, 2), time="09:30")),
        ("friday at 7:05", "UTC", Due(date=date(2026, 12, 4), time="07:05")),
    ],
)
def test_times_are_the_users_wall_clock(text: str, timezone: str, expected: Due) -> None:
    assert resolve_due(text, now_in(timezone)) == expected


def test_a_time_the_clocks_skip_is_refused_with_the_reason() -> None:
    # Lisbon springs forward from 01:00 to 02:00 on 2027-03-28; New York from 02:00 to 03:00 on 2027-03-14.
    for text, timezone in [("2027-03-28T01:30", "Europe/Lisbon"), ("2027-03-14T02:15", "America/New_York")]:
        with pytest.raises(InvalidInput, match="does not exist") as raised:
            resolve_due(text, now_in(timezone))
        assert timezone in raised.value.message
        assert "daylight saving" in raised.value.message


def test_a_time_that_happens_twice_is_kept_and_said() -> None:
    # New York falls back from 02:00 to 01:00 on 2026-11-01: 01:30 happens twice.
    due = resolve_due("2026-11-01T01:30", now_in("America/New_York"))
    assert (due.date, due.time) == (date(2026, 11, 1), "01:30")
    assert due.note is not None
    assert "twice" in due.note
    # The hour just after the change happens once.
    assert resolve_due("2026-11-01T02:30", now_in("America/New_York")).note is None


def test_an_empty_due_means_no_date() -> None:
    assert resolve_due("", now_in("UTC")) == Due(date=None)
    assert resolve_due("   ", now_in("UTC")) == Due(date=None)


@pytest.mark.parametrize(
    "text",
    [
        "someday",
        "next month",
        "2026-13-01",
        "2026-02-30",
        "2027-02-29",
        "31/12/2026",
        "12/31/2026",
        "tomorrow 25:00",
        "tomorrow 9am",
        "in -1 days",
        "in 99999 days",
        "yesterday",
        "2026-12-05T09:30:00+25:00",
        "T09:30",
    ],
)
def test_anything_else_is_a_400_that_lists_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        resolve_due(text, now_in("UTC"))
    assert "due" in raised.value.message
    if "days" not in text and ":" not in text:
        assert DUE_FORMS in raised.value.message


def test_filter_days_take_dates_and_day_words_only() -> None:
    now = now_in("UTC")
    assert resolve_day("2026-12-09", now, "due_from") == date(2026, 12, 9)
    assert resolve_day("tomorrow", now, "due_to") == date(2026, 12, 2)
    with pytest.raises(InvalidInput, match="due_to"):
        resolve_day("2026-12-09T10:00", now, "due_to")


@pytest.mark.parametrize("name", ["Europe/Lisbon", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_iana_zone_names_are_accepted(name: str) -> None:
    assert check_timezone(name) == name


@pytest.mark.parametrize(
    "name", ["", "Mars/Olympus", "europe/lisbon", "+01:00", "CEST", "../../etc/passwd", "UTC\x00"]
)
def test_other_zone_names_are_a_400_that_shows_a_valid_one(name: str) -> None:
    with pytest.raises(InvalidInput, match="Europe/Lisbon") as raised:
        check_timezone(name)
    assert raised.value.message.startswith("timezone")


@pytest.mark.parametrize(
    ("due", "time", "completed", "label"),
    [
        (date(2026, 11, 30), None, False, "overdue"),
        (date(2026, 11, 30), None, True, None),
        (date(2026, 12, 1), None, False, "today"),
        (date(2026, 12, 1), "10:59", False, "overdue"),
        (date(2026, 12, 1), "11:00", False, "today"),
        (date(2026, 12, 1), "10:59", True, "today"),
        (date(2026, 12, 2), "08:00", False, "tomorrow"),
        (date(2026, 12, 3), None, False, None),
        (None, None, False, None),
    ],
)
def test_due_label_is_worked_out_in_the_users_zone(
    due: date | None, time: str | None, completed: bool, label: str | None
) -> None:
    # Pago Pago: 2026-12-01 11:00 local.
    assert due_label(due, time, completed, now_in("Pacific/Pago_Pago")) == label


def test_due_dates_stop_before_the_year_3000() -> None:
    assert resolve_due("2999-12-31", now_in("UTC")).date == date(2999, 12, 31)
    with pytest.raises(InvalidInput, match="before the year 3000"):
        resolve_due("3000-01-01", now_in("UTC"))
