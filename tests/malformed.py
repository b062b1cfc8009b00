"""Families of malformed input, for the tests that send them to every door.

Each `Fragment` is JSON text (or text that JSON parsers must refuse) put in one place of an
otherwise valid request: a field's value, an object key, or the whole body. `must_fail` says
whether the fragment can never be valid where it is put: JSON that parsers refuse, numbers no
field takes, text no database stores. The others (`1.0`, `null`, `true`, a short string) are
wrong for most fields but a valid value for some, under pydantic's lax rules; for those the test
requires only what holds everywhere: no 5xx, and nothing written unless the call succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import text

from todo_mcp.db.engine import Database

HOLE: Final = b"\x00HOLE\x00"


@dataclass(frozen=True)
class Fragment:
    family: str
    name: str
    json: bytes
    must_fail: bool = True

    @property
    def id(self) -> str:
        return f"{self.family}: {self.name}"


def _nested(depth: int, opening: bytes = b"[", closing: bytes = b"]", inner: bytes = b"") -> bytes:
    return opening * depth + inner + closing * depth


VALUES: Final = [
    Fragment("nesting", "arrays 64 deep", _nested(64)),
    Fragment("nesting", "arrays 5,000 deep", _nested(5_000)),
    Fragment("nesting", "arrays 200,000 deep", _nested(200_000)),
    Fragment("nesting", "objects 5,000 deep", _nested(5_000, b'{"a":', b"}", b"1")),
    Fragment("nesting", "unclosed 10,000 deep", b"[" * 10_000),
    Fragment("number size", "5,000-digit integer", b"1" * 5_000),
    Fragment("number size", "negative 5,000-digit integer", b"-" + b"9" * 5_000),
    Fragment("number size", "2^63", b"9223372036854775808"),
    Fragment("number size", "-2^63 - 1", b"-9223372036854775809"),
    Fragment("number size", "2^64", b"18446744073709551616"),
    Fragment("number size", "1e999999", b"1e999999"),
    Fragment("number size", "-1e999999", b"-1e999999"),
    Fragment("number size", "1e-999999", b"1e-999999", must_fail=False),
    Fragment("number form", "1.5", b"1.5"),
    Fragment("number form", "1.0", b"1.0", must_fail=False),
    Fragment("number form", "-0", b"-0", must_fail=False),
    Fragment("number form", "1e2", b"1e2", must_fail=False),
    Fragment("number form", "leading zero", b"01"),
    Fragment("number form", "hexadecimal", b"0x10"),
    Fragment("number form", "plus sign", b"+1"),
    Fragment("NaN and infinity", "NaN", b"NaN"),
    Fragment("NaN and infinity", "Infinity", b"Infinity"),
    Fragment("NaN and infinity", "-Infinity", b"-Infinity"),
    Fragment("lone surrogates", "high", b'"buy \\ud800 milk"'),
    Fragment("lone surrogates", "low", b'"\\udfff"'),
    Fragment("lone surrogates", "pair reversed", b'"\\udc00\\ud800"'),
    Fragment("NUL", "escaped", b'"buy\\u0000milk"'),
    Fragment("NUL", "raw", b'"buy\x00milk"'),
    Fragment("control characters", "escaped bell", b'"buy\\u0007milk"'),
    Fragment("control characters", "escaped terminal escape", b'"\\u001b[31mred"'),
    Fragment("control characters", "escaped DEL", b'"buy\\u007fmilk"'),
    Fragment("control characters", "raw bell", b'"buy\x07milk"'),
    Fragment("control characters", "raw newline", b'"buy\nmilk"'),
    Fragment("wrong types", "true", b"true", must_fail=False),
    Fragment("wrong types", "null", b"null", must_fail=False),
    Fragment("wrong types", "empty array", b"[]"),
    Fragment("wrong types", "empty object", b"{}"),
    Fragment("wrong types", "array of text", b'["milk"]'),
    Fragment("wrong types", "short text", b'"pending"', must_fail=False),
    Fragment("wrong types", "integer", b"7", must_fail=False),
    Fragment("huge strings", "100,000 characters", b'"' + b"a" * 100_000 + b'"'),
    Fragment("huge strings", "2 MB", b'"' + b"a" * 2_000_000 + b'"'),
    # Stripped, it is no text at all: an empty description is valid (it clears one).
    Fragment("huge strings", "100,000 spaces", b'"' + b" " * 100_000 + b'"', must_fail=False),
    Fragment("encoding", "invalid UTF-8", b'"\xff\xfe"'),
    Fragment("encoding", "overlong UTF-8", b'"\xc0\xaf"'),
    Fragment("encoding", "byte order mark inside", b'\xef\xbb\xbf"x"'),
    Fragment("syntax", "single quotes", b"'milk'"),
    Fragment("syntax", "unterminated string", b'"milk'),
]

# Object keys: every tool refuses unknown arguments, so none of these is ever valid there.
KEYS: Final = [
    Fragment("keys", "lone surrogate", b'"\\ud800"'),
    Fragment("keys", "NUL", b'"\\u0000"'),
    Fragment("keys", "control character", b'"\\u001b[2J"'),
    Fragment("keys", "10,000 characters", b'"' + b"k" * 10_000 + b'"'),
    Fragment("keys", "not a string", b"1"),
]

# Whole bodies where a JSON object is expected.
BODIES: Final = [
    *(fragment for fragment in VALUES if fragment.family not in ("wrong types",)),
    Fragment("wrong types", "array", b"[]"),
    Fragment("wrong types", "string", b'"title"'),
    Fragment("wrong types", "number", b"1"),
    Fragment("wrong types", "true", b"true"),
    Fragment("empty", "no bytes", b""),
    Fragment("empty", "whitespace", b" \t\r\n"),
]


def fill(template: bytes, fragment: Fragment) -> bytes:
    assert HOLE in template
    return template.replace(HOLE, fragment.json)


async def snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: what "nothing written" is checked against."""
    tables = {
        "users": "SELECT id, email, name, password_hash, failed_logins FROM users ORDER BY id",
        "tasks": "SELECT id, user_id, title, description, completed, updated_at FROM tasks ORDER BY id",
        "conversations": "SELECT id, user_id, updated_at FROM conversations ORDER BY id",
        "messages": "SELECT id, conversation_id, role, content FROM messages ORDER BY id",
    }
    async with db.engine_connection() as connection:
        return {
            table: [tuple(row) for row in (await connection.execute(text(sql))).all()]
            for table, sql in tables.items()
        }
