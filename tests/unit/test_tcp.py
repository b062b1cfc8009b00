"""Our HTTP protocol: Nagle's algorithm off on served connections, even behind uvicorn's --workers
socket, and header values trimmed of the whitespace around them."""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from todo_mcp.tcp import NoDelayHttpToolsProtocol, event_loop_factory

pytestmark = pytest.mark.anyio


async def _nodelay_of_accepted_connection(protocol: type[HttpToolsProtocol]) -> int:
    """Serve on a listening socket of protocol number 0 (how uvicorn binds for several workers)
    and read TCP_NODELAY on the server's side of one accepted connection."""
    config = Config(app=PlainTextResponse("ok"), http=protocol, log_config=None)
    config.load()
    state = ServerState()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    assert listener.proto == 0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: protocol(config=config, server_state=state, app_state={}), sock=listener
    )
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            # The server registers the connection on its next turn of the loop; bounded wait.
            with anyio.fail_after(5):
                while not state.connections:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
            (connection,) = state.connections
            accepted = connection.transport.get_extra_info("socket")
            return int(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_served_connections_have_nagle_off_on_a_listening_socket_of_protocol_zero() -> None:
    assert await _nodelay_of_accepted_connection(NoDelayHttpToolsProtocol) == 1


async def test_uvicorns_own_protocol_leaves_nagle_on_there_which_is_why_ours_exists() -> None:
    # If this starts failing, uvicorn or asyncio fixed it and NoDelayHttpToolsProtocol can go.
    assert await _nodelay_of_accepted_connection(HttpToolsProtocol) == 0


def test_served_connections_have_nagle_off_on_uvloop_too() -> None:
    factory = event_loop_factory()
    assert factory is not None, "uvloop is a dependency on this platform"
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(_nodelay_of_accepted_connection(NoDelayHttpToolsProtocol)) == 1


async def _headers_seen_by_the_app(raw_headers: bytes) -> list[tuple[bytes, bytes]]:
    """Serve one raw HTTP/1.1 request through our protocol and return the headers the ASGI app got."""
    seen: list[tuple[bytes, bytes]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend(scope["headers"])
        await PlainTextResponse("ok")(scope, receive, send)

    config = Config(app=app, http=NoDelayHttpToolsProtocol, log_config=None)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: NoDelayHttpToolsProtocol(config=config, server_state=state, app_state={}), "127.0.0.1", 0
    )
    try:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + raw_headers + b"\r\n")
        with anyio.fail_after(5):
            await reader.read()
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    return seen


async def test_header_values_reach_the_app_without_the_whitespace_around_them() -> None:
    headers = dict(
        await _headers_seen_by_the_app(
            b"Mcp-Param-Region:  eu \t\r\nMcp-Name:\tadd_task\t\r\nX-Inner: a  b \r\nX-Empty: \t \r\n"
        )
    )
    assert headers[b"mcp-param-region"] == b"eu"
    assert headers[b"mcp-name"] == b"add_task"
    # Only the ends: whitespace inside a value is part of it.
    assert headers[b"x-inner"] == b"a  b"
    assert headers[b"x-empty"] == b""
