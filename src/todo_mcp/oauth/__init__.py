"""The OAuth door: the MCP SDK's authorization-server handlers on our provider, the metadata, and
the login, consent and connections pages. The rules are in `todo_mcp.services.oauth`."""
