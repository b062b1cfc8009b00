"""OAuth 2.1 for remote MCP clients: todo-mcp as its own authorization server, on our accounts.

The rules live here (clients, codes, grants, refresh-token rotation); `todo_mcp.oauth` is the
door that serves them over HTTP with the MCP SDK's handlers.
"""
