"""Every rule and every query of the service, once. MCP tools and REST routes call these."""
