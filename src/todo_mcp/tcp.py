"""How the HTTP servers treat their TCP connections, and which event loop they run on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# RFC 9110, section 5.5: optional whitespace around a field value is not part of it.
FIELD_WHITESPACE = b" \t"


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with Nagle's algorithm off on every connection, and header
    values without the whitespace that surrounds them on the wire.

    asyncio turns Nagle off only for sockets whose protocol number is TCP. The listening socket
    uvicorn binds for `--workers` has protocol number 0, and so do the connections it accepts:
    small responses then wait for the client's delayed ACK, about 40 ms each.

    httptools hands over a value's trailing spaces and tabs (h11 strips them), and the MCP SDK
    compares the routing headers of the 2026-07-28 revision (`Mcp-Method`, `Mcp-Name`,
    `Mcp-Param-*`, `MCP-Protocol-Version`) byte for byte, so `Mcp-Name: add_task ` was refused.
    Trimmed here, every app behind every server command sees the field values RFC 9110 means.
    """

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value.strip(FIELD_WHITESPACE))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (not on Windows): the MCP SDK's per-request tasks and
    streams cost a quarter less CPU on it. None means asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop
