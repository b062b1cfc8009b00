"""OpenTelemetry spans: the SDK's span per MCP message only when MCP_TRACING asks for it.

No OpenTelemetry SDK is installed here, so the tracer the MCP SDK starts its spans on is
replaced by one that records their names; everything else (server, tools, database) is real.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import NoOpTracer

from tests.conftest import UserFactory
from tests.mcp.conftest import connect
from todo_mcp.db.engine import Database

pytestmark = pytest.mark.anyio


class RecordingTracer(NoOpTracer):
    def __init__(self) -> None:
        self.names: list[str] = []

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.names.append(name)
        return super().start_as_current_span(name, *args, **kwargs)


@pytest.fixture
def tracer(monkeypatch: pytest.MonkeyPatch) -> RecordingTracer:
    recording = RecordingTracer()
    monkeypatch.setattr("mcp.shared._otel._tracer", recording)
    return recording


@pytest.mark.parametrize("tracing", [True, False])
async def test_a_span_per_tool_call_only_with_tracing_on(
    db: Database, user_factory: UserFactory, tracer: RecordingTracer, mode: str, tracing: bool
) -> None:
    await user_factory("alice")
    async with connect(db, mode=mode, tracing=tracing) as tools:
        await tools.ok("add_task", {"user_id": "alice", "title": "Traced"})
    spans = [name for name in tracer.names if name == "tools/call add_task"]
    assert spans == (["tools/call add_task"] if tracing else [])
