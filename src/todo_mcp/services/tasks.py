"""Tasks: every rule and query about a user's to-do items.

A task that belongs to another user is reported exactly like a missing task, so no answer
reveals whether someone else's task id exists.

These are the calls agents make all day, so they run their SQL on the driver connection
(`db.connection`) rather than through the ORM; the tables are still the SQLModel ones. Dates are
the user's: each query that needs "today" reads the user's time zone with the task rows, and
`due_label` is computed here, once, in that zone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from todo_mcp.db.connection import Connection, IntegrityViolation, Row
from todo_mcp.db.types import utcnow
from todo_mcp.services.dates import (
    SYSTEM_CLOCK,
    Clock,
    Due,
    DueLabel,
    LocalNow,
    check_due_date,
    due_label,
    resolve_due,
)
from todo_mcp.services.errors import InvalidInput, TaskNotFound, UserNotFound
from todo_mcp.services.task_listing import (
    KEY_KINDS,
    PRIORITY_OF_RANK,
    PRIORITY_RANK,
    SORT_KEYS,
    CursorCodec,
    Priority,
    TaskQuery,
    build_filter,
    check_priority,
    count_query,
    cursor_key,
    key_of_row,
    label_page_ids,
    labels_lead,
    task_page_ids,
)
from todo_mcp.services.validation import (
    check_client_request_id,
    check_row_id,
    check_user_id,
    clean_description,
    clean_labels,
    clean_title,
    label_key,
)

TaskField = Literal["title", "description", "due", "priority", "labels", "completed"]
# The doors pass the deployment's codec (`mcp.runtime.cursor_codec`).
DEVELOPMENT_CURSORS = CursorCodec(cursor_key(None))
# How long a client_request_id finds the task it made: long enough for any retry loop.
DEDUPLICATION_WINDOW = timedelta(hours=24)

_COLUMNS = (
    "tasks.id, tasks.user_id, tasks.title, tasks.description, tasks.completed, tasks.created_at, "
    "tasks.updated_at, tasks.due_date, tasks.due_time, tasks.priority_rank, tasks.labels, tasks.completed_at"
)
_TIMEZONE_OF_TASK_USER = "(SELECT users.timezone FROM users WHERE users.id = tasks.user_id)"
_RETURNING = (
    "RETURNING id, user_id, title, description, completed, created_at, updated_at, due_date, due_time, "
    "priority_rank, labels, completed_at, (SELECT users.timezone FROM users WHERE users.id = $1)"
)
_INSERT = (
    "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at, due_date, "
    "due_time, priority_rank, labels, search_text, client_request_id) "
    "VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11) "
    # A retried add_task whose first attempt was stored inserts nothing (see add_task).
    "ON CONFLICT (user_id, client_request_id) WHERE client_request_id IS NOT NULL DO NOTHING " + _RETURNING
)
_BY_REQUEST_ID = (
    f"SELECT {_COLUMNS}, {_TIMEZONE_OF_TASK_USER}, tasks.created_at FROM tasks "  # noqa: S608
    "WHERE tasks.user_id = $1 AND tasks.client_request_id = $2"
)
_FORGET_REQUEST_ID = "UPDATE tasks SET client_request_id = NULL WHERE id = $1"
_GET = (
    f"SELECT {_COLUMNS}, {_TIMEZONE_OF_TASK_USER} FROM tasks "  # noqa: S608
    "WHERE tasks.id = $1 AND tasks.user_id = $2"
)
_TIMEZONE = "SELECT timezone FROM users WHERE id = $1"
_SET_COMPLETED = "UPDATE tasks SET completed = $2, completed_at = $3, updated_at = $4 WHERE id = $1"
_SET_ALL = (
    "UPDATE tasks SET title = $2, description = $3, search_text = $4, due_date = $5, due_time = $6, "
    "priority_rank = $7, labels = $8, completed = $9, completed_at = $10, updated_at = $11 WHERE id = $1"
)
_DELETE = "DELETE FROM tasks WHERE id = $1"
_DELETE_LABELS = "DELETE FROM task_labels WHERE task_id = $1"
_MIRROR_TO_LABELS = (
    "UPDATE task_labels SET completed = $2, due_date = $3, due_time = $4, priority_rank = $5 "
    "WHERE task_id = $1"
)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime
    due_date: date | None = None
    due_time: str | None = None
    priority: Priority = "none"
    labels: tuple[str, ...] = ()
    completed_at: datetime | None = None
    # overdue / today / tomorrow in the user's zone at the time of the answer; None otherwise.
    due_label: DueLabel | None = None


@dataclass(frozen=True)
class Added:
    task: TaskRecord
    # True when a client_request_id found the task its first attempt made: nothing was written.
    deduplicated: bool = False
    note: str | None = None


@dataclass(frozen=True)
class Completion:
    task: TaskRecord
    already_completed: bool


@dataclass(frozen=True)
class Update:
    task: TaskRecord
    updated_fields: list[TaskField]
    note: str | None = None


@dataclass(frozen=True)
class TaskPage:
    tasks: list[TaskRecord]
    total: int
    next_cursor: str | None
    today: date
    timezone: str
    described: str = field(default="tasks")

    @property
    def count(self) -> int:
        return len(self.tasks)


def search_text(title: str, description: str | None) -> str:
    """What `query` is matched against: title and description, casefolded here rather than by
    each database's own rules (SQLite's lower() knows only ASCII)."""
    return f"{title}\n{description or ''}".casefold()


def _record(conn: Connection, row: Row, clock: Clock) -> TaskRecord:
    """A task from `_COLUMNS` followed by its user's time zone."""
    return _task(conn, row, LocalNow.of(row[12], clock))


def _task(conn: Connection, row: Row, now: LocalNow) -> TaskRecord:
    """A task from `_COLUMNS`, its due label for the user's `now` (worked out once per page)."""
    (task_id, user_id, title, description, completed, created_at, updated_at) = row[:7]
    due_date_value, due_time, rank, labels, completed_at = row[7:12]
    due_day = conn.read_day(due_date_value) if due_date_value is not None else None
    done = bool(completed)  # SQLite answers 0 or 1
    return TaskRecord(
        id=task_id,
        user_id=user_id,
        title=title,
        description=description,
        completed=done,
        created_at=conn.read_time(created_at),
        updated_at=conn.read_time(updated_at),
        due_date=due_day,
        due_time=due_time,
        priority=PRIORITY_OF_RANK[rank],
        # Most tasks have none: skip the parse.
        labels=tuple(json.loads(labels)) if labels != "[]" else (),
        completed_at=conn.read_time(completed_at) if completed_at is not None else None,
        due_label=due_label(due_day, due_time, done, now) if due_day else None,
    )


def _labelled(task: TaskRecord, clock: Clock, timezone: str) -> TaskRecord:
    """`task` with its due label recomputed after a change."""
    label = (
        due_label(task.due_date, task.due_time, task.completed, LocalNow.of(timezone, clock))
        if task.due_date is not None
        else None
    )
    return replace(task, due_label=label)


async def user_timezone(conn: Connection, *, user_id: str) -> str:
    """The user's time zone; `UserNotFound` for an unknown user."""
    row = await conn.fetchrow(_TIMEZONE, user_id)
    if row is None:
        raise UserNotFound(user_id)
    timezone: str = row[0]
    return timezone


async def require_user(conn: Connection, *, user_id: str) -> None:
    """Raise `UserNotFound` unless the user exists."""
    await user_timezone(conn, user_id=user_id)


def _plain_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


async def _resolve_due(
    conn: Connection, user_id: str, due: str, clock: Clock, timezone: str | None = None
) -> tuple[Due, str | None]:
    """`due` resolved for the user; reads their time zone only when the text needs it (a plain
    date does not). Returns the zone when it was read."""
    if not due.strip():
        return Due(date=None), timezone
    plain = _plain_date(due)
    if plain is not None:
        return Due(date=check_due_date(plain)), timezone
    zone_name = timezone or await user_timezone(conn, user_id=user_id)
    return resolve_due(due, LocalNow.of(zone_name, clock)), zone_name


async def _write_labels(conn: Connection, task: TaskRecord, labels: Sequence[str]) -> None:
    """The task's label rows, each with the task's completion, due date and priority."""
    if not labels:
        return
    values = ", ".join(f"($1, $2, $3, $4, $5, $6, ${index + 7})" for index in range(len(labels)))
    await conn.execute(
        "INSERT INTO task_labels (task_id, user_id, completed, due_date, due_time, priority_rank, "  # noqa: S608
        f"label_key) VALUES {values}",
        *_mirrored(conn, task),
        *(label_key(label) for label in labels),
    )


def _mirrored(conn: Connection, task: TaskRecord) -> tuple[Any, ...]:
    return (
        task.id,
        task.user_id,
        task.completed,
        conn.day(task.due_date) if task.due_date is not None else None,
        task.due_time,
        PRIORITY_RANK[task.priority],
    )


async def _mirror_to_labels(conn: Connection, task: TaskRecord) -> None:
    """Keep the task's label rows equal to the task in what they repeat of it."""
    task_id, _, *values = _mirrored(conn, task)
    await conn.execute(_MIRROR_TO_LABELS, task_id, *values)


async def add_task(
    conn: Connection,
    *,
    user_id: str,
    title: str,
    description: str | None = None,
    due: str | None = None,
    priority: str | None = None,
    labels: Sequence[str] | None = None,
    client_request_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Added:
    """Add a task; with a `client_request_id` seen from this user in the last 24 hours, return
    the task made then and write nothing (clients retry calls that timed out)."""
    user_id = check_user_id(user_id)
    clean = (clean_title(title), clean_description(description))
    rank = PRIORITY_RANK[check_priority(priority)] if priority is not None else PRIORITY_RANK["none"]
    tags = clean_labels(labels) if labels is not None else ()
    request_id = check_client_request_id(client_request_id) if client_request_id is not None else None
    resolved, _ = await _resolve_due(conn, user_id, due, clock) if due is not None else (Due(date=None), None)
    values = (
        *clean,
        False,
        conn.time(utcnow()),
        conn.day(resolved.date) if resolved.date is not None else None,
        resolved.time,
        rank,
        json.dumps(list(tags), ensure_ascii=False),
        search_text(*clean),
        request_id,
    )
    if request_id is None and not tags:
        # The common call: one statement, atomic on its own.
        row = await _insert(conn, user_id, values)
        assert row is not None
        return Added(task=_record(conn, row, clock), note=resolved.note)
    async with conn.transaction():
        row = await _insert(conn, user_id, values)
        if row is None:
            assert request_id is not None
            earlier = await conn.fetchrow(_BY_REQUEST_ID, user_id, request_id)
            assert earlier is not None, "the conflicting task is committed before ON CONFLICT answers"
            if conn.read_time(earlier[-1]) > utcnow() - DEDUPLICATION_WINDOW:
                return Added(task=_record(conn, earlier[:-1], clock), deduplicated=True)
            # Older than the window: that id now names nothing, and this call makes a new task.
            await conn.execute(_FORGET_REQUEST_ID, earlier[0])
            row = await _insert(conn, user_id, values)
            assert row is not None
        task = _record(conn, row, clock)
        await _write_labels(conn, task, tags)
    return Added(task=task, note=resolved.note)


async def _insert(conn: Connection, user_id: str, values: tuple[Any, ...]) -> Row | None:
    try:
        return await conn.fetchrow(_INSERT, user_id, *values)
    except IntegrityViolation as exc:
        # The user foreign key is the only constraint an insert can break (ON CONFLICT takes
        # the unique one).
        raise UserNotFound(user_id) from exc


async def list_tasks(
    conn: Connection,
    *,
    user_id: str,
    query: TaskQuery | None = None,
    codec: CursorCodec = DEVELOPMENT_CURSORS,
    clock: Clock = SYSTEM_CLOCK,
) -> TaskPage:
    """One page of the user's tasks that match `query`, in its order, and how many match.

    One statement in the common case: the page, its total and the user's time zone together.
    A filter on dates needs the user's today before the query is written, so it reads the zone
    first; an empty page asks again for the zone and the total (and finds an unknown user).
    """
    check_user_id(user_id)
    query = query or TaskQuery()
    timezone = await user_timezone(conn, user_id=user_id) if query.depends_on_today else None
    dated_now = LocalNow.of(timezone, clock) if timezone is not None else None
    params: list[Any] = [user_id]
    fingerprint = query.fingerprint(user_id)
    key = codec.decode(query.cursor, fingerprint, KEY_KINDS[query.sort]) if query.cursor is not None else None
    keys = SORT_KEYS[query.sort]
    if labels_lead(query):
        # Labels, completion and due order alone: page and total both from the label index.
        total_sql = count_query(query, "", params)
        fallback_total, counted = total_sql, len(params)
        page_ids = label_page_ids(conn, query, key, params)
    else:
        where = build_filter(conn, query, dated_now, params)
        fallback_total, counted = f"SELECT COUNT(*) FROM tasks WHERE {where}", len(params)  # noqa: S608
        total_sql = count_query(query, where, params)
        page_ids = task_page_ids(conn, query, where, key, params)
    direction = " DESC" if query.order == "desc" else ""
    outer_order = ", ".join(f"page.k{index}{direction}" for index in range(len(keys)))
    selected_keys = ", ".join(f"page.k{index}" for index in range(len(keys)))
    sql = (
        f"SELECT {_COLUMNS}, {selected_keys}, (SELECT timezone FROM users WHERE users.id = $1), "  # noqa: S608
        f"({total_sql}) FROM ({page_ids}) AS page "
        f"JOIN tasks ON tasks.id = page.page_id ORDER BY {outer_order}"
    )
    rows = await conn.fetch(sql, *params)
    if rows:
        timezone, total = rows[0][-2], int(rows[0][-1])
    else:
        found = await conn.fetchrow(
            f"SELECT timezone, ({fallback_total}) FROM users WHERE id = $1",  # noqa: S608
            *params[:counted],
        )
        if found is None:
            raise UserNotFound(user_id)
        timezone, total = found[0], int(found[1])
    now = dated_now or LocalNow.of(timezone, clock)
    shown = rows[: query.limit]
    tasks = [_task(conn, row, now) for row in shown]
    next_cursor = None
    if len(rows) > query.limit:
        next_cursor = codec.encode(fingerprint, key_of_row(conn, query, shown[-1][12 : 12 + len(keys)]))
    return TaskPage(
        tasks=tasks,
        total=total,
        next_cursor=next_cursor,
        today=now.today,
        timezone=timezone,
        described=query.described(),
    )


async def get_task(
    conn: Connection, *, user_id: str, task_id: int, for_update: bool = False, clock: Clock = SYSTEM_CLOCK
) -> TaskRecord:
    """The user's task, or `TaskNotFound` (or `UserNotFound` for an unknown user).

    `for_update` locks the row until the transaction ends, so a task deleted by a concurrent
    request is reported as not found instead of vanishing between our read and our write.
    """
    task, _ = await _fetch(conn, user_id, task_id, for_update=for_update, clock=clock)
    return task


async def _fetch(
    conn: Connection, user_id: str, task_id: int, *, for_update: bool, clock: Clock
) -> tuple[TaskRecord, str]:
    """The task and its user's time zone, read together."""
    check_user_id(user_id)
    check_row_id(task_id, "task_id")
    row = await conn.fetchrow(_GET + conn.for_update if for_update else _GET, task_id, user_id)
    if row is None:
        # Only the failure path pays for telling an unknown user from a missing task.
        await require_user(conn, user_id=user_id)
        raise TaskNotFound(task_id)
    return _record(conn, row, clock), row[12]


async def complete_task(
    conn: Connection, *, user_id: str, task_id: int, clock: Clock = SYSTEM_CLOCK
) -> Completion:
    """Mark the task completed; completing a completed task succeeds and changes nothing."""
    async with conn.transaction():
        task, timezone = await _fetch(conn, user_id, task_id, for_update=True, clock=clock)
        if task.completed:
            return Completion(task=task, already_completed=True)
        changed = await _set_completed(conn, task, True, clock, timezone)
        return Completion(task=changed, already_completed=False)


async def _set_completed(
    conn: Connection, task: TaskRecord, completed: bool, clock: Clock, timezone: str
) -> TaskRecord:
    now = utcnow()
    changed = replace(task, completed=completed, completed_at=now if completed else None, updated_at=now)
    await conn.execute(
        _SET_COMPLETED,
        task.id,
        completed,
        conn.time(now) if completed else None,
        conn.time(now),
    )
    if task.labels:
        await _mirror_to_labels(conn, changed)
    return _labelled(changed, clock, timezone)


async def set_task_completed(
    conn: Connection, *, user_id: str, task_id: int, completed: bool | None, clock: Clock = SYSTEM_CLOCK
) -> TaskRecord:
    """Set the task's completion; None flips it (what web front ends send as an empty PATCH)."""
    async with conn.transaction():
        task, timezone = await _fetch(conn, user_id, task_id, for_update=True, clock=clock)
        if completed is None:
            completed = not task.completed
        if task.completed == completed:
            return task
        return await _set_completed(conn, task, completed, clock, timezone)


async def delete_task(
    conn: Connection, *, user_id: str, task_id: int, clock: Clock = SYSTEM_CLOCK
) -> TaskRecord:
    """Delete the task and return it as it was."""
    async with conn.transaction():
        task = await get_task(conn, user_id=user_id, task_id=task_id, for_update=True, clock=clock)
        await conn.execute(_DELETE, task.id)
    return task


async def update_task(
    conn: Connection,
    *,
    user_id: str,
    task_id: int,
    title: str | None = None,
    description: str | None = None,
    due: str | None = None,
    priority: str | None = None,
    labels: Sequence[str] | None = None,
    completed: bool | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Update:
    """Change any of the task's fields at once: an empty description or due clears it, labels
    replace the set ([] clears it), completed false reopens the task."""
    given = {
        "title": title,
        "description": description,
        "due": due,
        "priority": priority,
        "labels": labels,
        "completed": completed,
    }
    if all(value is None for value in given.values()):
        raise InvalidInput(
            "Give at least one of title, description, due, priority, labels and completed; "
            "nothing was changed."
        )
    check_user_id(user_id)
    new_title = clean_title(title) if title is not None else None
    new_description = clean_description(description) if description is not None else None
    new_rank = PRIORITY_RANK[check_priority(priority)] if priority is not None else None
    new_labels = clean_labels(labels) if labels is not None else None
    if completed is not None and not isinstance(completed, bool):
        raise InvalidInput("completed must be true or false.")
    async with conn.transaction():
        task, timezone = await _fetch(conn, user_id, task_id, for_update=True, clock=clock)
        resolved = (await _resolve_due(conn, user_id, due, clock, timezone))[0] if due is not None else None
        changed = task
        if new_title is not None:
            changed = replace(changed, title=new_title)
        if description is not None:
            changed = replace(changed, description=new_description)
        if resolved is not None:
            changed = replace(changed, due_date=resolved.date, due_time=resolved.time)
        if new_rank is not None:
            changed = replace(changed, priority=PRIORITY_OF_RANK[new_rank])
        if new_labels is not None:
            changed = replace(changed, labels=new_labels)
        if completed is not None and completed != task.completed:
            changed = replace(changed, completed=completed, completed_at=utcnow() if completed else None)
        if changed != task:
            # Repeating the same update leaves the task exactly as it was, updated_at included.
            changed = replace(changed, updated_at=utcnow())
            await conn.execute(
                _SET_ALL,
                task.id,
                changed.title,
                changed.description,
                search_text(changed.title, changed.description),
                conn.day(changed.due_date) if changed.due_date is not None else None,
                changed.due_time,
                PRIORITY_RANK[changed.priority],
                json.dumps(list(changed.labels), ensure_ascii=False),
                changed.completed,
                conn.time(changed.completed_at) if changed.completed_at is not None else None,
                conn.time(changed.updated_at),
            )
            if changed.labels != task.labels:
                await conn.execute(_DELETE_LABELS, task.id)
                await _write_labels(conn, changed, changed.labels)
            elif changed.labels and _mirrored(conn, changed) != _mirrored(conn, task):
                await _mirror_to_labels(conn, changed)
            changed = _labelled(changed, clock, timezone)
    updated: list[TaskField] = [name for name, value in given.items() if value is not None]  # type: ignore[misc]
    return Update(task=changed, updated_fields=updated, note=resolved.note if resolved is not None else None)
