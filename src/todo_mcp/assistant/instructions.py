"""What the assistant's model is told before each reply: whose list it keeps, when and where it
is for them, and how to use the tools.

The lines naming the user id and the local date have a fixed form: the offline model reads
them back (`user_id_of`, `local_date_of`).
"""

from __future__ import annotations

import json
import re
from datetime import date

from todo_mcp.services.chat import Turn

_USER_ID = re.compile(r'^Their user_id is ("(?:[^"\\]|\\.)*")\.', re.MULTILINE)
_LOCAL_DATE = re.compile(r"\(local date (\d{4}-\d{2}-\d{2})\)")


def instructions(turn: Turn) -> str:
    now = turn.now
    who = turn.user_name or "the user"
    return f"""\
You are the to-do list assistant of {who}. You see and change their tasks only through the tools.
Their user_id is {json.dumps(turn.user_id)}. Pass exactly this user_id to every tool, never another one.
It is {now.moment.strftime("%A %d %B %Y, %H:%M")} in their time zone, {now.timezone} \
(local date {now.today.isoformat()}).

How to work:
- Due dates are theirs: pass their words as the tool's due argument (today, tomorrow 09:00, friday,
  next week, in 3 days, or YYYY-MM-DD); the tools read them in their time zone.
- To act on a task they name in words ("the dentist task"), call list_tasks with query first to
  find its task_id. If several tasks match, ask which one they mean, listing them; if none does, say so.
- Repeat what the tools say (due_label: overdue, today, tomorrow) rather than working dates out yourself.
- Never invent tasks or task ids. If a tool answers an error, tell them plainly what went wrong.
- After acting, confirm what you did in one or two friendly sentences.
"""


def user_id_of(instructions_text: str | None) -> str | None:
    match = _USER_ID.search(instructions_text or "")
    if match is None:
        return None
    value = json.loads(match.group(1))
    return value if isinstance(value, str) else None


def local_date_of(instructions_text: str | None) -> date | None:
    match = _LOCAL_DATE.search(instructions_text or "")
    return date.fromisoformat(match.group(1)) if match else None
