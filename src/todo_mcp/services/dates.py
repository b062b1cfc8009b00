"""Dates the way people and agents say them, in the user's own time zone.

A task's due date is a calendar date and its due time a wall-clock time, both the user's: "call
the dentist tomorrow at 9" means 09:00 where the user lives, whatever UTC says. So every "today"
here is the user's local today, taken from one injected clock (tests freeze it there, not in
library internals), and every word ("tomorrow", "friday", "in 3 days") is resolved against it at
the time of the call. ISO 8601 is parsed by the standard library; time zones are IANA's, through
`zoneinfo` (with `tzdata` installed, so that systems without a zone database work too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, available_timezones

from todo_mcp.services.errors import InvalidInput

DEFAULT_TIMEZONE = "UTC"
TIMEZONE_MAX = 64
# "in N days" up to about ten years ahead: further than any plan, short of date overflow.
MAX_DAYS_AHEAD = 3660
# Due dates end well before the stand-in date that sorts undated tasks last (db/models.py).
LAST_DUE_YEAR = 2999

DueLabel = Literal["overdue", "today", "tomorrow"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_IN_DAYS = re.compile(r"in (\d{1,5}) days?")
# A day word with a 24-hour time: "tomorrow 09:30", "friday at 17:00".
_AT_TIME = re.compile(r"(.+?)(?: at)? (\d{1,2}):(\d{2})")

DUE_FORMS = (
    "YYYY-MM-DD (2026-12-05), YYYY-MM-DDTHH:MM in the user's local time (2026-12-05T09:30), an "
    "ISO 8601 date-time with an offset (2026-12-05T09:30:00+01:00, converted to the user's time "
    "zone), or one of the words today, tomorrow, a weekday name such as friday (the next one), "
    "next week (next Monday), in N days (in 3 days), each optionally followed by a 24-hour time "
    "(tomorrow 09:30, friday at 17:00); an empty string removes the date"
)
DAY_FORMS = "YYYY-MM-DD (2026-12-05), or one of today, tomorrow, a weekday name, next week, in N days"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # Scans the zone database once; `ZoneInfo` alone would also open paths such as "../x".
    return frozenset(available_timezones())


def check_timezone(name: str, field: str = "timezone") -> str:
    """`name` if it is an IANA time zone, else a 400 naming the field and showing valid ones."""
    if not isinstance(name, str) or name.strip() not in _zone_names():
        raise InvalidInput(
            f"{field} must be an IANA time zone name such as Europe/Lisbon, America/New_York, "
            "Asia/Tokyo or UTC."
        )
    return name.strip()


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class LocalNow:
    """The current moment where the user is: their date, their wall-clock minute, their zone."""

    timezone: str
    moment: datetime

    @property
    def today(self) -> date:
        return self.moment.date()

    @property
    def hhmm(self) -> str:
        return self.moment.strftime("%H:%M")

    @classmethod
    def of(cls, timezone: str, clock: Clock = SYSTEM_CLOCK) -> LocalNow:
        return cls(timezone=timezone, moment=clock.now().astimezone(zone(timezone)))


@dataclass(frozen=True, slots=True)
class Due:
    """A resolved due date, with its wall-clock time if one was given; `note` says something the
    caller should hear (a time that happens twice that day)."""

    date: date | None
    time: str | None = None
    note: str | None = None


NO_DUE = Due(date=None)


def _day_from_word(word: str, today: date, field: str) -> date | None:
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    if word in WEEKDAYS:
        # The next one: on a Friday, "friday" is a week ahead ("today" says today).
        ahead = (WEEKDAYS.index(word) - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    if word == "next week":
        return today + timedelta(days=(7 - today.weekday()) or 7)
    if match := _IN_DAYS.fullmatch(word):
        days = int(match.group(1))
        if days > MAX_DAYS_AHEAD:
            raise InvalidInput(f"{field}: in N days takes at most {MAX_DAYS_AHEAD} days.")
        return today + timedelta(days=days)
    return None


def resolve_day(text: str, now: LocalNow, field: str) -> date:
    """A date (YYYY-MM-DD or a word), for filters such as due_from."""
    day = _day_from_word(" ".join(text.lower().split()), now.today, field)
    if day is not None:
        return day
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{field} is not a date this service reads; use {DAY_FORMS}.") from None


def resolve_due(text: str, now: LocalNow, field: str = "due") -> Due:
    """What `due` means for this user now; `NO_DUE` for an empty string."""
    due = _resolve_due(text, now, field)
    check_due_date(due.date, field)
    return due


def check_due_date(day: date | None, field: str = "due") -> date | None:
    if day is not None and day.year > LAST_DUE_YEAR:
        raise InvalidInput(f"{field} must be a date before the year {LAST_DUE_YEAR + 1}.")
    return day


def _resolve_due(text: str, now: LocalNow, field: str) -> Due:
    raw = text.strip()
    if not raw:
        return NO_DUE
    words = " ".join(raw.lower().split())
    day = _day_from_word(words, now.today, field)
    if day is not None:
        return Due(date=day)
    if (timed := _AT_TIME.fullmatch(words)) and (day := _day_from_word(timed.group(1), now.today, field)):
        try:
            at = time.fromisoformat(f"{int(timed.group(2)):02d}:{timed.group(3)}")
        except ValueError:
            raise InvalidInput(
                f"{field}: {timed.group(2)}:{timed.group(3)} is not a time of day (00:00 to 23:59)."
            ) from None
        return _wall_clock_due(day, at, now.timezone, field)
    try:
        return Due(date=date.fromisoformat(raw))
    except ValueError:
        pass  # not a date alone: a date and a time, or nothing this service reads
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{field} is not a date this service reads; use {DUE_FORMS}.") from None
    if moment.tzinfo is not None:
        local = moment.astimezone(zone(now.timezone))
        return Due(date=local.date(), time=local.strftime("%H:%M"))
    return _wall_clock_due(moment.date(), moment.time(), now.timezone, field)


def _wall_clock_due(day: date, at: time, timezone: str, field: str) -> Due:
    """A local date and time, checked against the zone's clock changes that day."""
    hhmm = at.strftime("%H:%M")
    tz = zone(timezone)
    naive = datetime.combine(day, at.replace(second=0, microsecond=0))
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise InvalidInput(
            f"{field}: {hhmm} does not exist on {day.isoformat()} in {timezone}, where the clocks "
            "jump forward over it (daylight saving time begins); choose another time."
        )
    if first.utcoffset() != second.utcoffset():
        return Due(
            date=day,
            time=hhmm,
            note=f"{hhmm} happens twice on {day.isoformat()} in {timezone} (the clocks go back); "
            "the task is due at the first of them.",
        )
    return Due(date=day, time=hhmm)


def due_label(due_date: date | None, due_time: str | None, completed: bool, now: LocalNow) -> DueLabel | None:
    """The word a model can repeat without date arithmetic: overdue (pending and past its date,
    or today past its time), today, tomorrow; None otherwise."""
    if due_date is None:
        return None
    today = now.today
    if not completed and (
        due_date < today or (due_date == today and due_time is not None and due_time < now.hhmm)
    ):
        return "overdue"
    if due_date == today:
        return "today"
    if due_date == today + timedelta(days=1):
        return "tomorrow"
    return None
