"""The text log line is exactly what `logging.Formatter` would write, whatever the moment."""

from __future__ import annotations

import logging
import sys

from hypothesis import given
from hypothesis import strategies as st

from todo_mcp.logs import TEXT_FORMAT, TextFormatter


def record(created: float, message: str = "tool=%s outcome=%s", *, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    entry = logging.LogRecord(
        "todo_mcp.tools", logging.INFO, __file__, 1, message, ("add_task", "ok"), exc_info
    )
    entry.created = created
    entry.msecs = (created - int(created)) * 1000
    return entry


# Moments from 2001 to 2100, each with a few neighbours in the same second and across its end.
MOMENTS = st.lists(st.floats(min_value=1e9, max_value=4.1e9), min_size=1, max_size=5).map(
    lambda starts: [start + step for start in starts for step in (0.0, 0.0004, 0.5, 0.9996, 1.0, 61.25)]
)


@given(moments=MOMENTS)
def test_lines_match_the_standard_formatter(moments: list[float]) -> None:
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for moment in moments:
        assert ours.format(record(moment)) == standard.format(record(moment))


def test_a_line_with_an_exception_matches_the_standard_formatter() -> None:
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    assert ours.format(record(1.8e9, exc=True)) == standard.format(record(1.8e9, exc=True))
    assert "ValueError: boom" in ours.format(record(1.8e9, exc=True))


def test_an_explicit_date_format_is_honoured() -> None:
    assert TextFormatter().formatTime(record(1.8e9), "%Y") == logging.Formatter().formatTime(
        record(1.8e9), "%Y"
    )
