"""The REST door: thin FastAPI routes over the same service layer as the MCP tools."""
