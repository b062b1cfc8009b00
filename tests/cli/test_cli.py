"""The `todo-mcp` command line, run as a real process the way a person runs it.

Each command runs in an empty temporary directory with an environment cleaned of every
todo-mcp setting, so no developer's `.env`, `todo.db` or exported secret leaks in.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import typer.main
from typer.core import TyperGroup

from tests.transports.processes import JWT_SECRET, clean_env, free_port, run_cli
from todo_mcp.cli import app
from todo_mcp.db import migrate

DOMAIN_TABLES = {"users", "tasks", "conversations", "messages"}
SECRET_ENV = {"JWT_SECRET": JWT_SECRET}


def _command_paths(group: TyperGroup, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of the CLI, read from the app itself so new ones are covered."""
    paths: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, TyperGroup):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


COMMAND_PATHS = _command_paths(typer.main.get_group(app))


def flat(text: str) -> str:
    """The text with line wrapping undone, since Rich wraps messages to the terminal width."""
    return " ".join(text.split())


def sqlite_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **extra})


def table_names(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    result = run_cli(["--help"], cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    for name in ("serve", "stdio", "token", "db", "users"):
        assert name in result.stdout


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=[" ".join(path) for path in COMMAND_PATHS])
def test_every_subcommand_has_help(tmp_path: Path, path: tuple[str, ...]) -> None:
    result = run_cli([*path, "--help"], cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert list(tmp_path.iterdir()) == [], "asking for help must not create files"


def test_db_upgrade_reaches_head_and_downgrade_to_base_empties_the_sqlite_database(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    head = migrate.head_revision()

    before = run_cli(["db", "current"], cwd=tmp_path, env=env)
    assert before.returncode == 0, before.stderr
    assert flat(before.stdout) == f"current: none head: {head}"

    upgraded = run_cli(["db", "upgrade"], cwd=tmp_path, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"is at revision {head}" in flat(upgraded.stderr)
    current = run_cli(["db", "current"], cwd=tmp_path, env=env)
    assert flat(current.stdout) == f"current: {head} head: {head}"
    assert table_names(tmp_path / "cli.db") >= DOMAIN_TABLES

    downgraded = run_cli(["db", "downgrade", "--revision", "base"], cwd=tmp_path, env=env)
    assert downgraded.returncode == 0, downgraded.stderr
    assert "base (empty)" in flat(downgraded.stderr)
    assert table_names(tmp_path / "cli.db") & DOMAIN_TABLES == set()
    after = run_cli(["db", "current"], cwd=tmp_path, env=env)
    assert flat(after.stdout) == f"current: none head: {head}"

    again = run_cli(["db", "upgrade"], cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert table_names(tmp_path / "cli.db") >= DOMAIN_TABLES


def test_db_upgrade_and_downgrade_work_on_postgresql(empty_postgres_url: str, tmp_path: Path) -> None:
    env = clean_env({"DATABASE_URL": empty_postgres_url})
    head = migrate.head_revision()
    assert run_cli(["db", "upgrade"], cwd=tmp_path, env=env).returncode == 0
    assert flat(run_cli(["db", "current"], cwd=tmp_path, env=env).stdout) == f"current: {head} head: {head}"
    downgraded = run_cli(["db", "downgrade", "--revision", "base"], cwd=tmp_path, env=env)
    assert downgraded.returncode == 0, downgraded.stderr
    assert flat(run_cli(["db", "current"], cwd=tmp_path, env=env).stdout) == f"current: none head: {head}"


def test_serve_refuses_a_postgresql_database_that_is_not_migrated(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    env = clean_env({"DATABASE_URL": empty_postgres_url, **SECRET_ENV})
    result = run_cli(["serve", "--port", str(free_port())], cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "todo-mcp db upgrade" in flat(result.stderr)
    assert "serves MCP at" not in result.stdout


def test_users_add_then_list_shows_the_user(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    added = run_cli(
        ["users", "add", "alice", "--email", "alice@example.com", "--name", "Alice"], cwd=tmp_path, env=env
    )
    assert added.returncode == 0, added.stderr
    assert "'alice' created" in added.stderr

    listed = run_cli(["users", "list"], cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "alice@example.com" in line]
    assert len(rows) == 1
    assert "alice" in rows[0]
    assert "Alice" in rows[0]


def test_users_add_and_set_take_a_time_zone_and_refuse_an_unknown_one(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    added = run_cli(
        ["users", "add", "ana", "--email", "ana@example.com", "--timezone", "Europe/Lisbon"],
        cwd=tmp_path,
        env=env,
    )
    assert added.returncode == 0, added.stderr
    moved = run_cli(["users", "set", "ana", "--timezone", "Asia/Tokyo"], cwd=tmp_path, env=env)
    assert moved.returncode == 0, moved.stderr
    assert "Asia/Tokyo" in moved.stderr
    rows = [
        line
        for line in run_cli(["users", "list"], cwd=tmp_path, env=env).stdout.splitlines()
        if "ana@" in line
    ]
    assert "Asia/Tokyo" in rows[0]

    for command in (
        ["users", "add", "bo", "--email", "bo@example.com", "--timezone", "Mars/Base"],
        ["users", "set", "ana", "--timezone", "Mars/Base"],
    ):
        refused = run_cli(command, cwd=tmp_path, env=env)
        assert refused.returncode == 2
        assert "Europe/Lisbon" in flat(refused.stderr)
    unknown = run_cli(["users", "set", "nobody", "--timezone", "UTC"], cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert "nobody" in flat(unknown.stderr)


@pytest.mark.parametrize(
    ("user_id", "email"),
    [("alice", "other@example.com"), ("someone-else", "alice@example.com")],
    ids=["same id", "same email"],
)
def test_adding_a_duplicate_user_exits_2_with_a_clear_message(
    tmp_path: Path, user_id: str, email: str
) -> None:
    env = sqlite_env(tmp_path)
    assert (
        run_cli(["users", "add", "alice", "--email", "alice@example.com"], cwd=tmp_path, env=env).returncode
        == 0
    )

    duplicate = run_cli(["users", "add", user_id, "--email", email], cwd=tmp_path, env=env)
    assert duplicate.returncode == 2
    assert "already exists" in flat(duplicate.stderr)
    assert "Traceback" not in duplicate.stderr
    listed = run_cli(["users", "list"], cwd=tmp_path, env=env)
    assert listed.stdout.count("@example.com") == 1


def test_token_without_jwt_secret_exits_2_and_says_what_is_missing(tmp_path: Path) -> None:
    result = run_cli(["token", "alice"], cwd=tmp_path, env=clean_env())
    assert result.returncode == 2
    assert "JWT_SECRET" in flat(result.stderr)
    assert result.stdout == ""


def test_token_prints_a_jwt_for_the_user_signed_with_jwt_secret(tmp_path: Path) -> None:
    result = run_cli(["token", "alice", "--ttl", "120"], cwd=tmp_path, env=clean_env(SECRET_ENV))
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert timedelta(seconds=claims["exp"] - claims["iat"]) == timedelta(seconds=120)


@pytest.mark.parametrize("ttl", ["0", "-5", str(31 * 24 * 3600)])
def test_token_with_an_impossible_lifetime_exits_2(tmp_path: Path, ttl: str) -> None:
    result = run_cli(["token", "alice", f"--ttl={ttl}"], cwd=tmp_path, env=clean_env(SECRET_ENV))
    assert result.returncode == 2
    assert "lifetime" in flat(result.stderr)
    assert result.stdout == ""


def test_serve_on_all_interfaces_without_jwt_secret_exits_2_without_listening(tmp_path: Path) -> None:
    port = free_port()
    everywhere = "0.0.0.0"  # noqa: S104 - the refusal is what is tested
    result = run_cli(
        ["serve", "--host", everywhere, "--port", str(port)], cwd=tmp_path, env=sqlite_env(tmp_path)
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in flat(result.stderr)
    assert "JWT_SECRET" in flat(result.stderr)
    # It stopped before opening a database or a socket.
    assert "serves MCP at" not in result.stdout
    assert not (tmp_path / "cli.db").exists()


@pytest.mark.parametrize("command", [["serve"], ["stdio", "--user", "alice"], ["db", "current"]])
def test_production_without_jwt_secret_exits_2(tmp_path: Path, command: list[str]) -> None:
    result = run_cli(command, cwd=tmp_path, env=sqlite_env(tmp_path, ENVIRONMENT="production"))
    assert result.returncode == 2
    assert "ENVIRONMENT=production refuses to start without JWT_SECRET" in flat(result.stderr)
    assert result.stdout == ""


def test_production_with_a_short_secret_exits_2(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path, ENVIRONMENT="production", JWT_SECRET="too-short")
    result = run_cli(["serve"], cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "at least 32 bytes" in flat(result.stderr)


def test_an_unsupported_database_url_exits_2_naming_the_accepted_forms(tmp_path: Path) -> None:
    result = run_cli(
        ["db", "current"], cwd=tmp_path, env=clean_env({"DATABASE_URL": "mysql://root@localhost/todo"})
    )
    assert result.returncode == 2
    assert "DATABASE_URL must be a PostgreSQL URL" in flat(result.stderr)


def test_an_unreachable_database_exits_2_without_a_traceback(tmp_path: Path) -> None:
    # A port nothing listens on: the connection is refused at once.
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/todo"
    result = run_cli(["users", "list"], cwd=tmp_path, env=clean_env({"DATABASE_URL": url}))
    assert result.returncode == 2
    assert "cannot reach the database" in flat(result.stderr)
    assert "Traceback" not in result.stderr


def test_the_embedded_default_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    added = run_cli(["users", "add", "alice", "--email", "alice@example.com"], cwd=tmp_path, env=clean_env())
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "todo.db").exists()
    assert table_names(tmp_path / "todo.db") >= DOMAIN_TABLES
