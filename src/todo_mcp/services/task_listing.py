"""What `list_tasks` may be asked: filters, orders, pages, and the cursors that join pages.

A page is a keyset page: the query asks for the tasks after the last one shown, in the order's
own terms (its sort key, then the id), so a task added or completed between two pages never
shifts the others by one, as an offset would. The cursor carries that last key, a fingerprint of
the user, filters and order it belongs to, and a MAC: one used with other filters, for another
user, or made up, is refused instead of answering a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from todo_mcp.db.connection import Connection
from todo_mcp.db.models import DUE_DATE_ORDER, DUE_TIME_ORDER
from todo_mcp.services.dates import LocalNow, resolve_day
from todo_mcp.services.errors import InvalidInput
from todo_mcp.services.validation import label_key, printable_name, storable_text

Status = Literal["all", "pending", "completed"]
DueFilter = Literal["overdue", "today", "tomorrow", "next_7_days", "no_date"]
Sort = Literal["created", "due", "priority", "updated"]
Order = Literal["asc", "desc"]
Priority = Literal["none", "low", "medium", "high"]

STATUSES: tuple[Status, ...] = ("all", "pending", "completed")
DUE_FILTERS: tuple[DueFilter, ...] = ("overdue", "today", "tomorrow", "next_7_days", "no_date")
SORTS: tuple[Sort, ...] = ("created", "due", "priority", "updated")
ORDERS: tuple[Order, ...] = ("asc", "desc")
PRIORITIES: tuple[Priority, ...] = ("none", "low", "medium", "high")
# Stored ranks: ascending is most urgent first (0 high ... 3 none).
PRIORITY_RANK: dict[str, int] = {"high": 0, "medium": 1, "low": 2, "none": 3}
PRIORITY_OF_RANK: tuple[Priority, ...] = ("high", "medium", "low", "none")

LIMIT_DEFAULT = 50
# A page of 100 tasks with full descriptions stays well inside what MCP clients take as one
# tool result (Claude Code refuses results over 25k tokens).
LIMIT_MAX = 100
QUERY_MAX = 200
CURSOR_MAX = 2048

# Each order's key columns, id last: every task has a distinct key, so a page ends exactly.
SORT_KEYS: dict[Sort, tuple[str, ...]] = {
    "created": ("tasks.id",),
    "due": (DUE_DATE_ORDER, DUE_TIME_ORDER, "tasks.priority_rank", "tasks.id"),
    "priority": ("tasks.priority_rank", DUE_DATE_ORDER, DUE_TIME_ORDER, "tasks.id"),
    "updated": ("tasks.updated_at", "tasks.id"),
}
# How each key value travels in a cursor (JSON) and into a query parameter.
KEY_KINDS: dict[Sort, tuple[str, ...]] = {
    "created": ("int",),
    "due": ("date", "text", "int", "int"),
    "priority": ("int", "date", "text", "int"),
    "updated": ("time", "int"),
}


def check_priority(value: str, field: str = "priority") -> Priority:
    if value not in PRIORITIES:
        raise InvalidInput(f"{field} must be one of none, low, medium, high.")
    return value


def _choice(value: str, choices: Sequence[str], field: str) -> str:
    if value not in choices:
        raise InvalidInput(f"{field} must be one of {', '.join(choices)}.")
    return value


@dataclass(frozen=True)
class TaskQuery:
    """A checked list request; build it with `TaskQuery.of`."""

    status: Status = "all"
    due: DueFilter | None = None
    due_from: str | None = None
    due_to: str | None = None
    priorities: tuple[Priority, ...] = ()
    label_keys: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    text: str | None = None
    sort: Sort = "created"
    order: Order = "asc"
    limit: int = LIMIT_DEFAULT
    cursor: str | None = None

    @classmethod
    def of(
        cls,
        *,
        status: str = "all",
        due: str | None = None,
        due_from: str | None = None,
        due_to: str | None = None,
        priority: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        query: str | None = None,
        sort: str = "created",
        order: str = "asc",
        limit: int = LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> TaskQuery:
        if due is not None and (due_from is not None or due_to is not None):
            raise InvalidInput("give either due or due_from/due_to, not both.")
        if isinstance(priority, str) or (priority is not None and not isinstance(priority, Sequence)):
            raise InvalidInput('priority must be a list such as ["high"] or ["high", "medium"].')
        if isinstance(labels, str) or (labels is not None and not isinstance(labels, Sequence)):
            raise InvalidInput('labels must be a list such as ["work"].')
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIMIT_MAX:
            raise InvalidInput(f"limit must be an integer from 1 to {LIMIT_MAX}.")
        text = None
        if query is not None:
            storable_text(query, "query")
            if len(query) > QUERY_MAX:
                raise InvalidInput(f"query is longer than {QUERY_MAX} characters.")
            text = query.strip().casefold() or None
        label_list = list(labels or ())
        for label in label_list:
            if not isinstance(label, str):
                raise InvalidInput('labels must be a list such as ["work"].')
            storable_text(label, "labels")
        if len(label_list) > 10:
            raise InvalidInput("labels takes at most 10 labels (a task has no more).")
        keys = tuple(sorted({label_key(label.strip()) for label in label_list if label.strip()}))
        for day, name in ((due_from, "due_from"), (due_to, "due_to")):
            if day is not None:
                storable_text(day, name)
        if cursor is not None and (not isinstance(cursor, str) or len(cursor) > CURSOR_MAX):
            raise InvalidInput("cursor is not one this server issued; pass next_cursor exactly as returned.")
        return cls(
            status=_choice(status, STATUSES, "status"),  # type: ignore[arg-type]
            due=_choice(due, DUE_FILTERS, "due") if due is not None else None,  # type: ignore[arg-type]
            due_from=due_from,
            due_to=due_to,
            priorities=tuple(
                sorted({check_priority(p) for p in (priority or ())}, key=PRIORITY_RANK.__getitem__)
            ),
            label_keys=keys,
            labels=tuple(label.strip() for label in label_list if label.strip()),
            text=text,
            sort=_choice(sort, SORTS, "sort"),  # type: ignore[arg-type]
            order=_choice(order, ORDERS, "order"),  # type: ignore[arg-type]
            limit=limit,
            cursor=cursor or None,
        )

    @property
    def depends_on_today(self) -> bool:
        return self.due is not None or self.due_from is not None or self.due_to is not None

    def fingerprint(self, user_id: str) -> str:
        """What a cursor is tied to: the user, the filters and the order (not the page size)."""
        facts = [
            user_id,
            self.status,
            self.due,
            self.due_from,
            self.due_to,
            list(self.priorities),
            list(self.label_keys),
            self.text,
            self.sort,
            self.order,
        ]
        return hashlib.sha256(json.dumps(facts).encode("utf-8", "backslashreplace")).hexdigest()[:32]

    def described(self) -> str:
        """The filters in words, for the answer's message: "pending tasks labelled work due today"."""
        noun = "tasks" if self.status == "all" else f"{self.status} tasks"
        parts = [noun]
        due_words = {
            "overdue": "that are overdue",
            "today": "due today",
            "tomorrow": "due tomorrow",
            "next_7_days": "due in the next 7 days",
            "no_date": "without a due date",
        }
        if self.due is not None:
            parts.append(due_words[self.due])
        if self.due_from is not None or self.due_to is not None:
            parts.append(f"due from {self.due_from or 'any date'} to {self.due_to or 'any date'}")
        if self.priorities:
            parts.append(f"of {' or '.join(self.priorities)} priority")
        if self.labels:
            parts.append("labelled " + ", ".join(printable_name(label) for label in self.labels))
        if self.text is not None:
            parts.append(f"matching '{printable_name(self.text)}'")
        return " ".join(parts)


@dataclass(frozen=True)
class Filter:
    """The WHERE clause of a list query (after `tasks.user_id = $1`) and its parameters."""

    sql: str
    params: list[Any]


def build_filter(conn: Connection, query: TaskQuery, now: LocalNow | None, params: list[Any]) -> str:
    """SQL conditions for `query`, appending their parameters to `params` ($1 is the user).

    The SQL is put together from fixed text and `$n` placeholders only; every value a caller
    sent travels as a parameter (hence the S608 exemptions here and in tasks.py).
    """

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    conditions = ["tasks.user_id = $1"]
    if query.status != "all":
        conditions.append(f"tasks.completed = {param(query.status == 'completed')}")
    if not query.depends_on_today:
        return _without_dates(query, conditions, param)
    assert now is not None, "a filter on dates is written with the user's today"
    today = now.today
    if query.due == "overdue":
        # Never a completed task: it is done, whatever its date said.
        conditions.append(
            f"tasks.completed = {param(False)} AND (tasks.due_date < {param(conn.day(today))} OR "
            f"(tasks.due_date = {param(conn.day(today))} AND tasks.due_time < {param(now.hhmm)}))"
        )
    elif query.due in ("today", "tomorrow"):
        day = today if query.due == "today" else today + timedelta(days=1)
        conditions.append(f"tasks.due_date = {param(conn.day(day))}")
    elif query.due == "next_7_days":
        last = today + timedelta(days=6)
        conditions.append(f"tasks.due_date BETWEEN {param(conn.day(today))} AND {param(conn.day(last))}")
    elif query.due == "no_date":
        conditions.append("tasks.due_date IS NULL")
    if query.due_from is not None:
        conditions.append(
            f"tasks.due_date >= {param(conn.day(resolve_day(query.due_from, now, 'due_from')))}"
        )
    if query.due_to is not None:
        conditions.append(f"tasks.due_date <= {param(conn.day(resolve_day(query.due_to, now, 'due_to')))}")
    return _without_dates(query, conditions, param)


def _without_dates(query: TaskQuery, conditions: list[str], param: Callable[[Any], str]) -> str:
    """The conditions after the status and dates: priority, labels, text."""
    if query.priorities:
        ranks = ", ".join(param(PRIORITY_RANK[priority]) for priority in query.priorities)
        conditions.append(f"tasks.priority_rank IN ({ranks})")
    for key in query.label_keys:
        conditions.append(
            "EXISTS (SELECT 1 FROM task_labels WHERE task_labels.task_id = tasks.id "  # noqa: S608
            f"AND task_labels.label_key = {param(key)})"
        )
    if query.text is not None:
        escaped = query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(f"tasks.search_text LIKE {param('%' + escaped + '%')} ESCAPE '\\'")
    return " AND ".join(conditions)


def counts_from_labels(query: TaskQuery) -> bool:
    """Whether the query filters by labels (and completion) only, so that its total can be
    counted from `task_labels` alone, which repeats each task's completion for this."""
    return bool(query.label_keys) and (
        query.due is None
        and query.due_from is None
        and query.due_to is None
        and not query.priorities
        and query.text is None
    )


def count_query(query: TaskQuery, where: str, params: list[Any]) -> str:
    """A SELECT that counts every match of `query` (`where`, whose parameters are in `params`),
    appending any parameters of its own to `params`."""
    if not counts_from_labels(query):
        return f"SELECT COUNT(*) FROM tasks WHERE {where}"  # noqa: S608

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    first_key = param(query.label_keys[0])
    sql = "SELECT COUNT(*) FROM task_labels AS first WHERE first.user_id = $1 "
    sql += f"AND first.label_key = {first_key}"
    if query.status != "all":
        sql += f" AND first.completed = {param(query.status == 'completed')}"
    for key in query.label_keys[1:]:
        sql += (
            " AND EXISTS (SELECT 1 FROM task_labels AS other WHERE other.task_id = first.task_id "  # noqa: S608
            f"AND other.label_key = {param(key)})"
        )
    return sql


def labels_lead(query: TaskQuery) -> bool:
    """Whether a page can come from the label index alone: filters of labels and completion
    only, in due order (the label rows repeat the task's completion, due date and priority)."""
    return counts_from_labels(query) and query.sort == "due"


# sort=due over the label rows (`first`): the same keys, read from the copies there.
LABEL_DUE_KEYS = (DUE_DATE_ORDER, DUE_TIME_ORDER, "first.priority_rank", "first.task_id")


def _selected(keys: Sequence[str]) -> str:
    return ", ".join(f"{key} AS k{index}" for index, key in enumerate(keys))


def task_page_ids(
    conn: Connection, query: TaskQuery, where: str, key: list[Any] | None, params: list[Any]
) -> str:
    """The page's task ids and sort keys, from the order's index on tasks (an index-only scan
    that probes the label index per entry): only the tasks shown are then read from the table."""
    page_where = where if key is None else f"{where} AND {after_cursor(conn, query, key, params)}"
    return (
        f"SELECT tasks.id AS page_id, {_selected(SORT_KEYS[query.sort])} FROM tasks "  # noqa: S608
        f"WHERE {page_where} ORDER BY {order_by(query)} LIMIT {query.limit + 1}"
    )


def label_page_ids(conn: Connection, query: TaskQuery, key: list[Any] | None, params: list[Any]) -> str:
    """The page's task ids and sort keys from the first label's index entries, already in due
    order: 51 entries for a page of 50, where walking the tasks in due order and probing each
    for the label read about 550 for a label on a fifth of them."""

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    conditions = ["first.user_id = $1", f"first.label_key = {param(query.label_keys[0])}"]
    if query.status != "all":
        conditions.append(f"first.completed = {param(query.status == 'completed')}")
    for other in query.label_keys[1:]:
        conditions.append(
            "EXISTS (SELECT 1 FROM task_labels AS other WHERE other.task_id = first.task_id "  # noqa: S608
            f"AND other.label_key = {param(other)})"
        )
    if key is not None:
        conditions.append(after_cursor(conn, query, key, params, LABEL_DUE_KEYS))
    direction = " DESC" if query.order == "desc" else ""
    order = ", ".join(f"{column}{direction}" for column in LABEL_DUE_KEYS)
    return (
        f"SELECT first.task_id AS page_id, {_selected(LABEL_DUE_KEYS)} FROM task_labels AS first "  # noqa: S608
        f"WHERE {' AND '.join(conditions)} ORDER BY {order} LIMIT {query.limit + 1}"
    )


def order_by(query: TaskQuery) -> str:
    direction = " DESC" if query.order == "desc" else ""
    return ", ".join(f"{key}{direction}" for key in SORT_KEYS[query.sort])


def after_cursor(
    conn: Connection,
    query: TaskQuery,
    key: list[Any],
    params: list[Any],
    columns: Sequence[str] | None = None,
) -> str:
    """The condition "after the last task shown" in the query's order, as one row comparison
    over `columns` (the order's keys on tasks unless given)."""
    placeholders = []
    for kind, value in zip(KEY_KINDS[query.sort], key, strict=True):
        params.append(_key_param(conn, kind, value))
        placeholders.append(f"${len(params)}")
    operator = "<" if query.order == "desc" else ">"
    return f"({', '.join(columns or SORT_KEYS[query.sort])}) {operator} ({', '.join(placeholders)})"


def _key_param(conn: Connection, kind: str, value: Any) -> Any:
    if kind == "date":
        return conn.day(date.fromisoformat(value))
    if kind == "time":
        return conn.time(datetime.fromisoformat(value))
    return value


def key_of_row(conn: Connection, query: TaskQuery, values: Sequence[Any]) -> list[Any]:
    """A task's sort key (selected beside it) as JSON values for a cursor."""
    key: list[Any] = []
    for kind, value in zip(KEY_KINDS[query.sort], values, strict=True):
        if kind == "date":
            key.append(conn.read_day(value).isoformat())
        elif kind == "time":
            key.append(conn.read_time(value).isoformat())
        else:
            key.append(value)
    return key


_BAD_CURSOR = (
    "cursor is not valid for this request: pass next_cursor exactly as the previous page returned "
    "it, with the same filters, sort and order (or leave it out to start from the first page)."
)


class CursorCodec:
    """Encodes and checks cursors under one key, the same in every process of a deployment."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, fingerprint: str, key: list[Any]) -> str:
        payload = json.dumps({"f": fingerprint, "k": key}, separators=(",", ":")).encode()
        return _b64(payload) + "." + _b64(self._mac(payload))

    def decode(self, cursor: str, fingerprint: str, kinds: tuple[str, ...]) -> list[Any]:
        try:
            encoded_payload, encoded_mac = cursor.split(".")
            payload = _unb64(encoded_payload)
            if not hmac.compare_digest(self._mac(payload), _unb64(encoded_mac)):
                raise ValueError("forged")
            content = json.loads(payload)
            key = content["k"]
            if content["f"] != fingerprint or not isinstance(key, list) or len(key) != len(kinds):
                raise ValueError("another request's cursor")
            for kind, value in zip(kinds, key, strict=True):
                if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
                    raise ValueError("key")
                if kind != "int" and not isinstance(value, str):
                    raise ValueError("key")
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
            raise InvalidInput(_BAD_CURSOR) from None
        return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cursor_key(secret: str | None) -> bytes:
    """The MAC key of cursors: derived from the deployment's token secret, so every process
    agrees; without one (development mode, where no caller is checked anyway) a fixed key."""
    material = (secret or "todo-mcp development cursors").encode()
    return hashlib.sha256(b"todo-mcp list cursor\x00" + material).digest()
