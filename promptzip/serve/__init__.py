"""`promptzip serve`: an OpenAI-compatible proxy that compresses requests on their way to an
upstream server (`app.py`, policy in `policy.py`), and `promptzip mcp`, the same tools over MCP
(`mcp.py`). Both need the `serve` extra."""
