"""Input rules shared by every door: lengths, ids, and text the databases can store."""

from __future__ import annotations

import re
from collections.abc import Sequence

from todo_mcp.db.models import (
    CLIENT_REQUEST_ID_MAX,
    DESCRIPTION_MAX,
    EMAIL_MAX,
    LABEL_MAX,
    NAME_MAX,
    TITLE_MAX,
    USER_ID_MAX,
)
from todo_mcp.services.errors import InvalidInput

LABELS_MAX = 10

# Ids are 64-bit on PostgreSQL; a larger number cannot name a row and would overflow the driver.
MAX_ROW_ID = 2**63 - 1
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# C0 control characters other than tab, line feed and carriage return, and DEL: never part of a
# title or a note a person wrote, and invisible (or worse, terminal escapes) wherever shown.
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")


def storable_text(value: str, field: str, *, control_characters: bool = False) -> str:
    """Reject text that PostgreSQL or SQLite cannot store (NUL, unpaired surrogates), and
    control characters unless `control_characters` (passwords: opaque, hashed, never shown),
    with a reason instead of a 500."""
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters.")
    if not control_characters and _CONTROL.search(value):
        raise InvalidInput(
            f"{field} must not contain control characters (U+0001-U+001F other than tab and line "
            "breaks, or U+007F)."
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} must be valid Unicode text (it has an unpaired surrogate).") from None
    return value


def scrubbed_text(value: str) -> str:
    """Text from elsewhere (a model's answer) made storable: NUL and control characters removed,
    unpaired surrogates replaced."""
    value = _CONTROL.sub("", value.replace("\x00", ""))
    return value.encode("utf-8", "replace").decode("utf-8")


def printable_name(name: str, limit: int = 64) -> str:
    """A name taken from a request (an argument's key, a tool's name) as an error message may
    show it: shortened, with control characters and unpaired surrogates escaped, so that the
    message itself can always be written out."""
    short = name if len(name) <= limit else name[: limit - 1] + "…"
    escaped = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", short.replace("\x00", "\\x00"))
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


def clean_title(title: str) -> str:
    title = storable_text(title, "title").strip()
    if not title:
        raise InvalidInput("title must not be empty; give the task a short name.")
    if len(title) > TITLE_MAX:
        raise InvalidInput(f"title is {len(title)} characters; the limit is {TITLE_MAX}. Shorten it.")
    return title


def clean_description(description: str | None) -> str | None:
    """Strip the description; an empty one means no description."""
    if description is None:
        return None
    description = storable_text(description, "description").strip()
    if len(description) > DESCRIPTION_MAX:
        raise InvalidInput(
            f"description is {len(description)} characters; the limit is {DESCRIPTION_MAX}. Shorten it."
        )
    return description or None


def check_user_id(user_id: str) -> str:
    storable_text(user_id, "user_id")
    if not user_id.strip():
        raise InvalidInput("user_id must not be empty.")
    if len(user_id) > USER_ID_MAX:
        raise InvalidInput(f"user_id is longer than {USER_ID_MAX} characters.")
    return user_id


def check_row_id(value: int, field: str) -> int:
    if not 1 <= value <= MAX_ROW_ID:
        raise InvalidInput(f"{field} must be a positive integer, as returned when the item was created.")
    return value


def clean_email(email: str) -> str:
    email = storable_text(email, "email").strip().lower()
    if len(email) > EMAIL_MAX or not _EMAIL.match(email):
        raise InvalidInput("email must be a valid address such as ada@example.com.")
    return email


def clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = storable_text(name, "name").strip()
    if len(name) > NAME_MAX:
        raise InvalidInput(f"name is longer than {NAME_MAX} characters.")
    return name or None


def check_page(limit: int, offset: int, *, max_limit: int) -> None:
    if not 1 <= limit <= max_limit:
        raise InvalidInput(f"limit must be between 1 and {max_limit}.")
    if not 0 <= offset <= MAX_ROW_ID:
        raise InvalidInput("offset must be zero or a positive integer.")


def clean_labels(labels: Sequence[str], field: str = "labels") -> tuple[str, ...]:
    """Labels stripped, as given otherwise, duplicates (compared case-insensitively) folded into
    the first; at most LABELS_MAX of 1 to LABEL_MAX characters each."""
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise InvalidInput(f'{field} must be a list of short texts, such as ["work", "urgent"].')
    cleaned: list[str] = []
    seen: set[str] = set()
    for label in labels:
        if not isinstance(label, str):
            raise InvalidInput(f'{field} must be a list of short texts, such as ["work", "urgent"].')
        text = storable_text(label, field).strip()
        if not 1 <= len(text) <= LABEL_MAX:
            raise InvalidInput(f"each of {field} must be 1 to {LABEL_MAX} characters long after trimming.")
        if label_key(text) not in seen:
            seen.add(label_key(text))
            cleaned.append(text)
    if len(cleaned) > LABELS_MAX:
        raise InvalidInput(
            f"a task has at most {LABELS_MAX} labels; {len(cleaned)} different ones were given."
        )
    return tuple(cleaned)


def label_key(label: str) -> str:
    """What labels are compared by: "Work" and "WORK" are one label."""
    return label.casefold()


def check_client_request_id(value: str) -> str:
    storable_text(value, "client_request_id")
    if not value.strip() or len(value) > CLIENT_REQUEST_ID_MAX:
        raise InvalidInput(
            f"client_request_id must be 1 to {CLIENT_REQUEST_ID_MAX} characters, such as a UUID you "
            "make once per task and send again with every retry of the same add_task."
        )
    return value
