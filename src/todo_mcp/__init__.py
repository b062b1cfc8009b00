"""todo-mcp: a multi-user task service for AI agents (MCP) and people (REST)."""

__version__ = "0.1.0"
