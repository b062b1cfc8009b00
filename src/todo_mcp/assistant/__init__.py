"""The chat assistant: an Agents SDK agent on our MCP tools, and its offline model."""
