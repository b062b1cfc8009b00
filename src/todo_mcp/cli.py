"""The `todo-mcp` command line: serve, api, stdio, chat, db, users, token."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp

from todo_mcp.config import Settings
from todo_mcp.db import revisions
from todo_mcp.db.engine import Database
from todo_mcp.logs import configure_logging
from todo_mcp.services import users
from todo_mcp.services.errors import DomainError, UserNotFound
from todo_mcp.services.identity import Caller
from todo_mcp.services.tokens import TokenService

app = typer.Typer(
    help="todo-mcp: a multi-user task service for AI agents (MCP) and people.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")

# stdout belongs to the MCP stream in stdio mode, so everything human goes to stderr.
err = Console(stderr=True)
out = Console()
log = logging.getLogger("todo_mcp")
T = TypeVar("T")

DEMO_USER = "demo"
DEMO_EMAIL = "demo@example.com"


class Fatal(Exception):
    """Stop the command with this message and exit status 2."""


def _setting_problem(error: Any) -> str:
    """A validation error as the variable it is about and what is wrong with it."""
    message = str(error["msg"]).removeprefix("Value error, ")
    variable = str(error["loc"][0]).upper() if error.get("loc") else None
    return f"{variable}: {message}" if variable and variable not in message else message


def load_settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(_setting_problem(error) for error in exc.errors())
        err.print(f"[red]Configuration error:[/red] {problems}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format, sql_echo=settings.database_echo)
    return settings


def run_async(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run one async job on a fresh engine, turning domain errors into a clear exit."""

    async def main() -> T:
        db = Database.from_settings(settings)
        try:
            return await work(db)
        finally:
            # Bounded: a connection cut off mid-query must not hold the process hostage.
            with anyio.move_on_after(10, shield=True):
                await db.dispose()

    try:
        return asyncio.run(main())
    except (DomainError, Fatal) as exc:
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        err.print(f"[red]Error:[/red] {message}")
        raise typer.Exit(2) from None


async def prepare_database(db: Database, settings: Settings) -> None:
    """The embedded default migrates itself; a server database must be migrated on purpose."""
    if settings.is_sqlite:
        from todo_mcp.db import migrate

        await migrate.upgrade(db)
        return
    # Without Alembic: a server that only checks the revision does not carry it (see revisions.py).
    try:
        current = await revisions.current_revision(db)
    except Exception as exc:
        raise Fatal(f"cannot reach the database at {settings.database_url_for_logs}: {exc}") from exc
    if current != revisions.head_revision():
        raise Fatal(
            f"the database schema is at {current or 'nothing'}, this code needs {revisions.head_revision()}; "
            "run: todo-mcp db upgrade"
        )


def stdio_config(user_id: str, settings: Settings) -> str:
    database_url = settings.database_url
    if settings.is_sqlite:
        # A desktop client starts the server in a directory of its own choosing.
        database = make_url(database_url).database or "todo.db"
        database_url = f"sqlite:///{Path(database).resolve()}"
    executable = Path(sys.argv[0]).resolve()
    server = {
        "command": str(executable),
        "args": ["stdio", "--user", user_id],
        "env": {"DATABASE_URL": database_url},
    }
    return json.dumps({"mcpServers": {"todo": server}}, indent=2)


def print_connect_help(settings: Settings, host: str, port: int, demo_user: str | None) -> None:
    base = f"http://{'localhost' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
    user = demo_user or "YOUR_USER_ID"
    auth = "" if not settings.auth_enabled else ' -H "Authorization: Bearer $(todo-mcp token ' + user + ')"'
    out.print(f"\n[bold]todo-mcp[/bold] serves MCP at [cyan]{base}/mcp[/cyan] (Streamable HTTP)")
    out.print(f"Database: {settings.database_url_for_logs}")
    if settings.public_url is not None:
        out.print(
            f"OAuth: on. Remote MCP clients (Claude, ChatGPT, VS Code, Cursor, ...) connect to "
            f"[cyan]{settings.public_url}/mcp[/cyan] and log in with a todo-mcp account; "
            f"connected apps at {settings.public_url}/connections",
            soft_wrap=True,
        )
    if settings.auth_enabled:
        out.print("Tokens: required. Make one with: todo-mcp token USER_ID")
    else:
        out.print(
            "[yellow]Development mode:[/yellow] no JWT_SECRET, so no token is asked "
            "and any user_id is accepted."
        )
    if demo_user:
        out.print(f"Demo user: [bold]{demo_user}[/bold]")
    out.print("\nTry a tool with curl:")
    out.print(
        f"  curl -s -X POST {base}/tools/add_task -H 'Content-Type: application/json'{auth} "
        f'-d \'{{"user_id": "{user}", "title": "Try todo-mcp"}}\'',
        soft_wrap=True,
    )
    out.print(
        f"\nMCP Inspector: npx @modelcontextprotocol/inspector, transport Streamable HTTP, URL {base}/mcp"
    )
    out.print("Desktop client (stdio), add to its MCP config:")
    out.print(stdio_config(user, settings), soft_wrap=True, highlight=False)
    out.print("")


def check_exposure(settings: Settings, *hosts: str) -> None:
    for host in hosts:
        try:
            settings.check_http_exposure(host)
        except ValueError as exc:
            err.print(f"[red]Configuration error:[/red] {exc}")
            raise typer.Exit(2) from None


def warn_about_auth(settings: Settings, hosts: str) -> None:
    if not settings.auth_enabled:
        log.warning(
            "DEVELOPMENT MODE: no JWT_SECRET is set, so requests are not authenticated and any caller "
            "may act as any user. Listening on %s only.",
            hosts,
        )
    elif warning := settings.weak_secret_warning():
        log.warning(warning)


def uvicorn_options() -> dict[str, Any]:
    """What every server this command line starts has in common: our logging, no access log
    (the tool and request lines replace it), httptools with Nagle off on every connection, and
    uvloop where it is installed."""
    from todo_mcp.tcp import NoDelayHttpToolsProtocol

    return {
        "http": NoDelayHttpToolsProtocol,
        "loop": "auto",
        "log_config": None,
        "access_log": False,
        "server_header": False,
    }


def serve_apps(apps: list[tuple[ASGIApp, str, int]]) -> None:
    """Run one uvicorn server per app in this process; when one stops, the others stop too."""
    import uvicorn

    from todo_mcp.tcp import event_loop_factory

    servers = [
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, **uvicorn_options()))
        for app, host, port in apps
    ]

    async def run(server: uvicorn.Server) -> None:
        try:
            await server.serve()
        finally:
            for other in servers:
                other.should_exit = True

    async def run_all() -> None:
        await asyncio.gather(*(run(server) for server in servers))

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run_all())


def serve_workers(host: str, port: int, workers: int) -> None:
    """Several processes on one port, each with its own engine; they share nothing but the database."""
    import uvicorn

    # Each worker builds its app from the environment (see create_app): pass the bind address on.
    os.environ["MCP_SERVER_HOST"] = host
    # The workers' metrics go to files there, so that a scrape of any worker counts them all
    # (prometheus-client's multiprocess mode); a directory of this run's own, unless one is set.
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="todo-mcp-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    log.info("serving MCP on http://%s:%d/mcp with %d worker processes", host, port, workers)
    try:
        uvicorn.run(
            "todo_mcp.mcp.http_app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **uvicorn_options(),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: MCP_SERVER_HOST or 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: MCP_SERVER_PORT or 5000].")] = None,
    demo: Annotated[
        bool, typer.Option(help=f"Create the user '{DEMO_USER}' if missing, for a first trial.")
    ] = False,
    with_api: Annotated[
        bool, typer.Option(help="Also serve the REST API from this process, on API_HOST:API_PORT.")
    ] = False,
    api_port: Annotated[
        int | None, typer.Option(help="REST API port with --with-api [default: 8000].")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes sharing the port (MCP only).")
    ] = 1,
) -> None:
    """Serve the MCP tools over Streamable HTTP (stateless, JSON), with /health and /ready."""
    from todo_mcp.mcp.http_app import build_http_app

    settings = load_settings()
    host = host or settings.mcp_server_host
    port = port or settings.mcp_server_port
    api_port = api_port or settings.api_port
    check_exposure(settings, host, *([settings.api_host] if with_api else []))
    if workers > 1 and with_api:
        err.print("[red]Error:[/red] --workers serves MCP only; run `todo-mcp api` beside it for REST.")
        raise typer.Exit(2)

    async def prepare(db: Database) -> None:
        await prepare_database(db, settings)
        if demo:
            async with db.transaction() as session:
                try:
                    await users.get_user(session, user_id=DEMO_USER)
                except UserNotFound:
                    await users.create_user(session, user_id=DEMO_USER, email=DEMO_EMAIL, name="Demo")

    run_async(settings, prepare)
    warn_about_auth(settings, host)
    # The help is for a person at a terminal; with JSON logs (log tools reading the output)
    # the log lines below say where it serves.
    talk = settings.log_format == "text"
    if talk:
        print_connect_help(settings, host, port, DEMO_USER if demo else None)
    if workers > 1:
        serve_workers(host, port, workers)
        return
    db = Database.from_settings(settings)
    apps: list[tuple[ASGIApp, str, int]] = [(build_http_app(settings, db, host=host), host, port)]
    log.info("serving MCP on http://%s:%d/mcp, database %s", host, port, settings.database_url_for_logs)
    if with_api:
        # Imported only here: building the REST routes costs a worker that serves MCP alone
        # about 10 MB.
        from todo_mcp.api.app import build_api_app

        apps.append((build_api_app(settings, db, dispose_on_shutdown=False), settings.api_host, api_port))
        if talk:
            out.print(f"REST API: http://{settings.api_host}:{api_port} (OpenAPI docs at /docs)")
            chat_user = DEMO_USER if demo else "USER_ID"
            out.print(
                f"Assistant: POST /api/{chat_user}/chat, or in this terminal: "
                f"todo-mcp chat --user {chat_user} ({settings.chat_model or 'built-in offline model'})\n"
            )
        log.info("serving the REST API on http://%s:%d", settings.api_host, api_port)
    serve_apps(apps)


@app.command()
def api(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: API_HOST or 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: API_PORT or 8000].")] = None,
) -> None:
    """Serve the REST API (accounts, tasks, conversations), with OpenAPI docs at /docs."""
    from todo_mcp.api.app import build_api_app

    settings = load_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    check_exposure(settings, host)
    run_async(settings, lambda db: prepare_database(db, settings))
    warn_about_auth(settings, host)
    log.info("serving the REST API on http://%s:%d, database %s", host, port, settings.database_url_for_logs)
    if settings.log_format == "text":
        out.print(f"REST API: http://{host}:{port} (OpenAPI docs at http://{host}:{port}/docs)")
    serve_apps([(build_api_app(settings, Database.from_settings(settings)), host, port)])


@app.command()
def stdio(
    user: Annotated[
        str, typer.Option("--user", help="The one user this process serves; other user_ids get 403.")
    ],
) -> None:
    """Serve the MCP tools over stdio for one local user (desktop MCP clients)."""
    from todo_mcp.mcp.runtime import ToolRuntime
    from todo_mcp.mcp.server import build_mcp_server

    settings = load_settings()

    async def serve_stdio(db: Database) -> None:
        await prepare_database(db, settings)
        async with db.transaction() as session:
            try:
                await users.get_user(session, user_id=user)
            except DomainError:
                log.warning(
                    "user %r does not exist yet; create it with: todo-mcp users add %s --email ...",
                    user,
                    user,
                )
        runtime = ToolRuntime.for_settings(db, settings, process_caller=Caller(user_id=user))
        server, _ = build_mcp_server(runtime, tracing=settings.mcp_tracing)
        log.info("serving MCP over stdio for user %r, database %s", user, settings.database_url_for_logs)
        await server.run_stdio_async()
        log.info("stdin closed; stopping")
        # A client that quits mid-call leaves that call's task behind, stuck in the database
        # driver, and the event loop would wait for it forever. The client has gone, so nothing
        # is left to answer: close what closes promptly and leave. Uncommitted work is rolled
        # back by the database, as after any lost connection.
        with anyio.move_on_after(2, shield=True):
            await db.dispose()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    run_async(settings, serve_stdio)


@app.command()
def chat(
    user: Annotated[str, typer.Option("--user", help="The user whose assistant to talk to.")],
    conversation: Annotated[
        int | None, typer.Option("--conversation", help="Resume this conversation [default: a new one].")
    ] = None,
    url: Annotated[str | None, typer.Option(help="The REST API [default: http://API_HOST:API_PORT].")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TODO_MCP_TOKEN",
            help="A bearer token for USER [default: signed with JWT_SECRET if set; none in development].",
        ),
    ] = None,
) -> None:
    """Chat with the assistant in the terminal; each tool call is shown as it happens."""
    from todo_mcp.chat_cli import run

    settings = load_settings()
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host  # noqa: S104
    base_url = (url or f"http://{host}:{settings.api_port}").rstrip("/")
    if token is None and settings.auth_enabled:
        tokens = TokenService(settings)
        if tokens.can_issue:
            token = tokens.issue(user, timedelta(hours=12))
    raise typer.Exit(run(base_url, user, token, conversation, out))


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to the latest revision (or the one given)."""
    settings = load_settings()

    from todo_mcp.db import migrate

    async def work(db: Database) -> str | None:
        await migrate.upgrade(db, revision)
        return await migrate.current_revision(db)

    current = run_async(settings, work)
    err.print(f"Database {settings.database_url_for_logs} is at revision {current}.")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Option(help="Target revision: -1 for one step, 'base' to drop everything.")
    ] = "-1",
) -> None:
    """Take the database schema back down (to 'base' removes every table and its data)."""
    settings = load_settings()

    from todo_mcp.db import migrate

    async def work(db: Database) -> str | None:
        await migrate.downgrade(db, revision)
        return await migrate.current_revision(db)

    current = run_async(settings, work)
    err.print(f"Database {settings.database_url_for_logs} is at revision {current or 'base (empty)'}.")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the latest one this code knows."""
    settings = load_settings()
    current = run_async(settings, lambda db: revisions.current_revision(db))
    out.print(f"current: {current or 'none'}  head: {revisions.head_revision()}")


@users_app.command("add")
def users_add(
    user_id: Annotated[str, typer.Argument(help="The user's id (the subject of their tokens).")],
    email: Annotated[str, typer.Option(help="The user's email address (unique).")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone, such as Europe/Lisbon [default: UTC].")
    ] = None,
) -> None:
    """Create a user who can then own tasks."""
    settings = load_settings()

    async def work(db: Database) -> None:
        await prepare_database(db, settings)
        async with db.transaction() as session:
            await users.create_user(session, user_id=user_id, email=email, name=name, timezone=timezone)

    run_async(settings, work)
    err.print(f"User {user_id!r} created.")


@users_app.command("set")
def users_set(
    user_id: Annotated[str, typer.Argument(help="The user to change.")],
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone, such as Europe/Lisbon; dates are read in it.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name ('' clears it).")] = None,
) -> None:
    """Change a user's time zone or display name."""
    settings = load_settings()

    async def work(db: Database) -> str:
        await prepare_database(db, settings)
        async with db.transaction() as session:
            user = await users.update_profile(session, user_id=user_id, name=name, timezone=timezone)
            return user.timezone

    zone_name = run_async(settings, work)
    err.print(f"User {user_id!r} updated; time zone {zone_name}.")


@users_app.command("list")
def users_list() -> None:
    """List the users."""
    settings = load_settings()

    async def work(db: Database) -> list[tuple[str, str, str, str, str]]:
        await prepare_database(db, settings)
        async with db.transaction() as session:
            return [
                (user.id, user.email, user.name or "", user.timezone, user.created_at.isoformat())
                for user in await users.list_users(session)
            ]

    table = Table("id", "email", "name", "timezone", "created_at")
    for row in run_async(settings, work):
        table.add_row(*row)
    out.print(table)


@app.command()
def token(
    user_id: Annotated[str, typer.Argument(help="The user the token is for (its subject).")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print a bearer token for USER_ID, signed with JWT_SECRET (for trials and tests)."""
    settings = load_settings()
    tokens = TokenService(settings)
    try:
        print(tokens.issue(user_id, timedelta(seconds=ttl)))
    except DomainError as exc:
        err.print(f"[red]Error:[/red] {exc.message}")
        raise typer.Exit(2) from None
