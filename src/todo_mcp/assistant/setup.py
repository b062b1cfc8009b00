"""The assistant as the settings describe it: which model, which tools, which limits.

Built once per process: the OpenAI client (~60 ms to make) and the HTTP machinery are shared by
every reply; each reply gets only its own MCP connection and token.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from agents import OpenAIChatCompletionsModel, set_tracing_disabled
from agents.models.interface import Model
from openai import AsyncOpenAI
from starlette.applications import Starlette

from todo_mcp.assistant.agent import AgentAssistant, Limits
from todo_mcp.assistant.offline_model import OfflineModel
from todo_mcp.assistant.tools_link import ToolsLink, process_token_service
from todo_mcp.config import ConfigError, Settings
from todo_mcp.db.engine import Database
from todo_mcp.services.chat import HistoryBudget
from todo_mcp.services.dates import SYSTEM_CLOCK, Clock

log = logging.getLogger("todo_mcp.chat")

# Local servers (vLLM, Ollama, llama.cpp) want no key, but the OpenAI client refuses to start
# without one.
PLACEHOLDER_KEY = "not-needed"


def build_model(settings: Settings) -> tuple[Model, AsyncOpenAI | None]:
    """The model, and the client to close when the app stops (None for the offline model)."""
    if settings.chat_model is None:
        return OfflineModel(), None
    key = settings.chat_api_key.get_secret_value() if settings.chat_api_key else None
    if key is None and settings.chat_base_url is None and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            f"CHAT_MODEL={settings.chat_model} needs CHAT_API_KEY (or OPENAI_API_KEY) for OpenAI, or "
            "CHAT_BASE_URL for another OpenAI-compatible server"
        )
    client = AsyncOpenAI(
        base_url=settings.chat_base_url,
        api_key=key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY,
        timeout=settings.chat_model_timeout_seconds,
        max_retries=1,
    )
    # Chat completions: what OpenAI and the local servers all speak (most lack the Responses API).
    return OpenAIChatCompletionsModel(model=settings.chat_model, openai_client=client), client


@dataclass(frozen=True, slots=True)
class AssistantSetup:
    assistant: AgentAssistant
    budget: HistoryBudget
    # This process's own MCP server for the assistant (run it for as long as the app runs),
    # or None when the tools are at CHAT_MCP_URL.
    tools_app: Starlette | None
    model_client: AsyncOpenAI | None = None

    async def close(self) -> None:
        await self.assistant.link.close()
        if self.model_client is not None:
            # Its connections, closed in this event loop rather than by the collector later.
            await self.model_client.close()


def build_assistant(
    settings: Settings, db: Database, *, model: Model | None = None, clock: Clock = SYSTEM_CLOCK
) -> AssistantSetup:
    """`model` replaces the one the settings name (tests script theirs); `clock` is the tools'."""
    set_tracing_disabled(not settings.chat_tracing)
    tools_app: Starlette | None = None
    if settings.chat_mcp_url is None:
        # Imported here: the MCP app is only needed when the tools are served in process.
        from todo_mcp.mcp.http_app import build_http_app

        tokens = process_token_service(settings)
        tools_app = build_http_app(
            settings, db, host="127.0.0.1", tokens=tokens, dispose_on_shutdown=False, clock=clock
        )
        link = ToolsLink.in_process(tools_app, tokens, settings)
    else:
        link = ToolsLink.remote(settings)
    model_client = None
    if model is None:
        model, model_client = build_model(settings)
        named = settings.chat_model or "offline (built-in rules)"
    else:
        named = type(model).__name__
    log.info("assistant: model %s, tools %s", named, settings.chat_mcp_url or "in process")
    limits = Limits(
        timeout_seconds=settings.chat_timeout_seconds,
        max_turns=settings.chat_max_turns,
        tracing=settings.chat_tracing,
    )
    return AssistantSetup(
        assistant=AgentAssistant(model, link, limits),
        budget=HistoryBudget(
            messages=settings.chat_history_messages, characters=settings.chat_history_characters
        ),
        tools_app=tools_app,
        model_client=model_client,
    )
