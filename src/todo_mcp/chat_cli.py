"""`todo-mcp chat`: a terminal conversation with the assistant of a running REST API.

It talks to `POST /api/{user_id}/chat` with `Accept: text/event-stream`, so each tool call is
shown as the agent makes it and the answer as it is written. Any process of the deployment
can serve it: the conversation lives in the database (`--conversation N` resumes one).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
from rich.console import Console
from rich.markup import escape

PROMPT = "you> "
QUIT = frozenset({"/quit", "/exit", "quit", "exit"})
NEW = "/new"
HELP = "Type a message; /new starts a new conversation, /quit (or Ctrl-D) leaves."


class ChatError(Exception):
    """The API could not be reached or refused the request; the message says what to do."""


@dataclass
class Event:
    name: str
    data: Any


def events_of(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events, from the lines of a response."""
    name, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif not line.strip() and data:
            yield Event(name, json.loads("\n".join(data)))
            name, data = "message", []
    if data:
        yield Event(name, json.loads("\n".join(data)))


def _arguments(arguments: Any) -> str:
    if not isinstance(arguments, dict):
        return str(arguments)
    shown = {key: value for key, value in arguments.items() if key != "user_id"}
    return ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in shown.items())


class Session:
    def __init__(
        self, base_url: str, user_id: str, token: str | None, console: Console, conversation_id: int | None
    ) -> None:
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx2.Client(base_url=base_url, headers=headers, timeout=httpx2.Timeout(10, read=300))
        self.base_url = base_url
        self.user_id = user_id
        self.console = console
        self.conversation_id = conversation_id

    def send(self, message: str) -> None:
        body: dict[str, Any] = {"message": message}
        if self.conversation_id is not None:
            body["conversation_id"] = self.conversation_id
        try:
            with self.http.stream("POST", f"/api/{self.user_id}/chat", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise ChatError(_refusal(response))
                self._show(events_of(response.iter_lines()))
        except httpx2.TransportError as exc:
            raise ChatError(
                f"cannot reach the REST API at {self.base_url} ({exc.__class__.__name__}); start it with "
                "`make run` or `todo-mcp api`, or pass --url"
            ) from None

    def _show(self, events: Iterator[Event]) -> None:
        writing = False
        for event in events:
            if event.name == "conversation":
                self.conversation_id = int(event.data["conversation_id"])
            elif event.name == "tool_call":
                call = f"{event.data['name']}({_arguments(event.data['arguments'])})"
                self.console.print(f"  [dim]\u2192 {escape(call)}[/dim]")
            elif event.name == "tool_result":
                result = event.data["result"]
                style = "green" if result.get("status") == "success" else "red"
                self.console.print(f"  [{style}]\u2190 {escape(str(result.get('message', '')))}[/{style}]")
            elif event.name == "text":
                if not writing:
                    self.console.print("[bold]assistant>[/bold] ", end="")
                    writing = True
                self.console.print(escape(event.data["delta"]), end="", highlight=False)
            elif event.name == "done":
                self.console.print()
                writing = False
            elif event.name == "error":
                if writing:
                    self.console.print()
                self.console.print(
                    f"[red]The assistant failed:[/red] {escape(event.data['detail'])} "
                    f"(error id {event.data.get('error_id')}); your message is saved."
                )

    def close(self) -> None:
        self.http.close()


def _refusal(response: httpx2.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:200]
    if response.status_code == 401:
        return f"the API asks for a token ({detail}); pass --token, or set JWT_SECRET to make one here"
    return f"HTTP {response.status_code}: {detail}"


def run(base_url: str, user_id: str, token: str | None, conversation_id: int | None, console: Console) -> int:
    """The conversation loop; returns the exit status."""
    session = Session(base_url, user_id, token, console, conversation_id)
    where = f"conversation {conversation_id}" if conversation_id else "a new conversation"
    console.print(f"[bold]todo-mcp assistant[/bold] for {escape(user_id)} at {escape(base_url)}, {where}.")
    console.print(f"[dim]{HELP}[/dim]")
    interactive = sys.stdin.isatty()
    try:
        while True:
            try:
                line = (
                    console.input(f"[bold cyan]{PROMPT}[/bold cyan]") if interactive else sys.stdin.readline()
                )
            except (EOFError, KeyboardInterrupt):
                break
            if not interactive and not line:
                break
            message = line.strip()
            if not message:
                continue
            if not interactive:
                console.print(f"[bold cyan]{PROMPT}[/bold cyan]{escape(message)}")
            if message in QUIT:
                break
            if message == NEW:
                session.conversation_id = None
                console.print("[dim]A new conversation starts with your next message.[/dim]")
                continue
            try:
                session.send(message)
            except ChatError as exc:
                console.print(f"[red]Error:[/red] {escape(str(exc))}")
                if not interactive:
                    return 1
    finally:
        session.close()
    if session.conversation_id is not None:
        console.print(
            f"[dim]Resume with: todo-mcp chat --user {user_id} --conversation {session.conversation_id}[/dim]"
        )
    return 0
