"""How the assistant's agent reaches the task tools: over MCP Streamable HTTP, with a token made
for the one user it works for, so that it has that user's rights and no more.

By default the tools are this process's own MCP server, called in process (no port, no Host
check to configure), and the tokens are signed with a key made at start-up that never leaves
the process: even in development mode, where the public MCP server asks no token, the
assistant's calls are bound to their user. With `CHAT_MCP_URL` the tools are a separate MCP
server of the same deployment, and the tokens are signed with the shared `JWT_SECRET`.

What every reply would otherwise repeat is done once per process: the HTTP machinery (an
`httpx2.AsyncClient` per reply is cheap when it wraps the shared transport; one made from scratch
costs ~30 ms of SSL set-up here), the tool listing, and the MCP client's output-schema validators.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any

import httpx2
from agents import AgentBase, RunContextWrapper
from agents.mcp import MCPServerStreamableHttp
from mcp.types import Tool as MCPTool
from pydantic import SecretStr
from starlette.types import ASGIApp

from todo_mcp.config import ConfigError, Settings
from todo_mcp.request_ids import current_request_id
from todo_mcp.services.tokens import TokenService

IN_PROCESS_URL = "http://127.0.0.1/mcp"


class SharedTransport(httpx2.AsyncBaseTransport):
    """Lends one transport (its connection pool) to many short-lived clients: closing a client
    must not close what the next reply uses."""

    def __init__(self, transport: httpx2.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Kept open; `close` closes it at shutdown."""

    async def close(self) -> None:
        await self._transport.aclose()


def process_token_service(settings: Settings) -> TokenService:
    """Tokens that only this process makes and accepts."""
    return TokenService(
        settings.model_copy(
            update={
                "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
                "jwt_algorithm": "HS256",
                "jwt_public_key": None,
                "jwt_jwks_url": None,
                "jwt_issuer": None,
                "jwt_audience": None,
            }
        )
    )


class ToolListing:
    """The tools as the server listed them, shared by every reply for a while: they are the same
    for every user, and listing them on each reply's new connection cost a third of its CPU."""

    def __init__(self, ttl_seconds: float = 60.0) -> None:
        self.ttl_seconds = ttl_seconds
        self._tools: list[MCPTool] | None = None
        self._listed_at = 0.0

    def fresh(self) -> list[MCPTool] | None:
        if self._tools is None or time.monotonic() - self._listed_at > self.ttl_seconds:
            return None
        return self._tools

    def store(self, tools: list[MCPTool]) -> None:
        self._tools, self._listed_at = tools, time.monotonic()


class OutputValidators:
    """The MCP client checks each tool result against the tool's output schema with a validator
    it compiles once per session, at about 60 times the cost of a check; a reply's session is
    new, so it compiled one for every tool it called. The validators are kept here instead,
    with the schema each was made for, and handed to every new session.

    This fills the SDK's own per-session caches (mcp 2.3.0: `ClientSession._tool_output_schemas`
    and `_tool_output_validators`) with what a listing would have put there; should a later
    listing differ, the session drops the validator itself.
    """

    def __init__(self) -> None:
        self._kept: dict[str, tuple[dict[str, Any], Any]] = {}

    @staticmethod
    def _caches(session: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schemas = getattr(session, "_tool_output_schemas", None)
        validators = getattr(session, "_tool_output_validators", None)
        if isinstance(schemas, dict) and isinstance(validators, dict):
            return schemas, validators
        return None

    def lend(self, session: Any) -> None:
        if (caches := self._caches(session)) is None:
            return
        schemas, validators = caches
        for name, (schema, validator) in self._kept.items():
            schemas.setdefault(name, schema)
            validators.setdefault(name, validator)

    def keep(self, session: Any) -> None:
        if (caches := self._caches(session)) is None:
            return
        schemas, validators = caches
        for name, validator in validators.items():
            if (schema := schemas.get(name)) is not None:
                self._kept[name] = (schema, validator)


class ReplyConnection(MCPServerStreamableHttp):
    """One reply's MCP connection, with what the process already knows about the tools."""

    def __init__(self, *, listing: ToolListing, validators: OutputValidators, **options: Any) -> None:
        super().__init__(**options)
        self._listing = listing
        self._validators = validators

    async def connect(self) -> None:
        await super().connect()  # type: ignore[no-untyped-call]
        self._validators.lend(self.session)

    async def list_tools(
        self, run_context: RunContextWrapper[Any] | None = None, agent: AgentBase | None = None
    ) -> list[MCPTool]:
        if (tools := self._listing.fresh()) is not None:
            return tools
        tools = await super().list_tools(run_context, agent)
        self._listing.store(tools)
        return tools

    async def cleanup(self) -> None:
        if self.session is not None:
            self._validators.keep(self.session)
        await super().cleanup()  # type: ignore[no-untyped-call]


class ToolsLink:
    def __init__(
        self,
        *,
        url: str,
        transport: httpx2.AsyncBaseTransport,
        tokens: TokenService,
        tool_timeout: float,
        token_ttl: timedelta,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self._transport = SharedTransport(transport)
        self._tool_timeout = tool_timeout
        self._token_ttl = token_ttl
        self._listing = ToolListing()
        self._validators = OutputValidators()

    @classmethod
    def in_process(cls, app: ASGIApp, tokens: TokenService, settings: Settings) -> ToolsLink:
        return cls(
            url=IN_PROCESS_URL,
            transport=httpx2.ASGITransport(app=app),
            tokens=tokens,
            tool_timeout=settings.chat_tool_timeout_seconds,
            token_ttl=reply_token_ttl(settings),
        )

    @classmethod
    def remote(cls, settings: Settings) -> ToolsLink:
        assert settings.chat_mcp_url is not None
        tokens = TokenService(settings)
        if not tokens.can_issue:
            raise ConfigError(
                "CHAT_MCP_URL needs JWT_SECRET (with an HS256/HS384/HS512 JWT_ALGORITHM): the assistant "
                "signs a token for each user it works for, which that MCP server must accept"
            )
        return cls(
            url=settings.chat_mcp_url,
            transport=httpx2.AsyncHTTPTransport(retries=1),
            tokens=tokens,
            tool_timeout=settings.chat_tool_timeout_seconds,
            token_ttl=reply_token_ttl(settings),
        )

    def server_for(self, user_id: str) -> ReplyConnection:
        """An MCP connection acting for `user_id` alone, for one reply."""
        token = self.tokens.issue(user_id, self._token_ttl)
        headers = {"Authorization": f"Bearer {token}"}
        if (request_id := current_request_id.get()) is not None:
            # The tool calls' log lines carry the chat request's id.
            headers["X-Request-Id"] = request_id
        return ReplyConnection(
            listing=self._listing,
            validators=self._validators,
            params={
                "url": self.url,
                "headers": headers,
                "timeout": self._tool_timeout,
                "httpx_client_factory": self._client,
            },
            name="todo-mcp",
            # One connection per reply: list the tools once for it, not on every model turn.
            cache_tools_list=True,
            client_session_timeout_seconds=self._tool_timeout,
        )

    def _client(
        self, headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=self._transport,
            headers=headers,
            timeout=timeout if timeout is not None else self._tool_timeout,
            auth=auth,
            trust_env=False,
        )

    async def close(self) -> None:
        await self._transport.close()


def reply_token_ttl(settings: Settings) -> timedelta:
    """Long enough for one reply, and no longer."""
    return timedelta(seconds=int(settings.chat_timeout_seconds) + 60)
