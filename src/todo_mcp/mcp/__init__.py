"""The MCP door: five thin tools over the service layer, served over Streamable HTTP or stdio."""
