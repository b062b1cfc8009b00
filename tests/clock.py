"""A clock a test sets: the one way tests choose "now" (injected, never patched in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass
class FrozenClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


def at(text: str) -> FrozenClock:
    """A clock stopped at an ISO 8601 instant ("2026-12-01T22:00:00Z")."""
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, "a frozen clock needs an instant, with its offset"
    return FrozenClock(moment.astimezone(UTC))
