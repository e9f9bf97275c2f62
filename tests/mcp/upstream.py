"""A FastMCP-style upstream (the official MCP Python SDK's MCPServer) for tests/mcp_e2e.rs.

Usage: upstream.py PORT RECORD_FILE SIGNAL_DIR

Every HTTP request it receives is appended to RECORD_FILE as one JSON line (method, path,
selected headers, and the JSON-RPC methods and tool names in the body), so a test can prove
what reached the upstream and what never did. `count_slowly` reports progress, then waits
for the client to create SIGNAL_DIR/<n> before going on: it can only finish if each progress
notification reached the client while the tool was still running.
"""

import json
import os
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

PORT = int(sys.argv[1])
RECORD = sys.argv[2]
SIGNALS = sys.argv[3]

server = MCPServer("sck-test-upstream")


@server.tool()
def echo(text: str) -> str:
    """Returns its argument."""
    return f"echo: {text}"


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool(name="shell.exec")
def shell_exec(command: str) -> str:
    """A tool the default policy allows only at LoA 4 (it never runs anything)."""
    return f"would run {command}"


@server.tool()
async def count_slowly(steps: int, ctx: Context) -> str:
    """Reports progress step by step; each step waits for the client to have seen the last."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
        with anyio.fail_after(20):
            while not os.path.exists(os.path.join(SIGNALS, str(step))):
                await anyio.sleep(0.02)
    return f"counted to {steps}"


HEADERS = ["authorization", "x-upstream-key", "mcp-session-id", "mcp-protocol-version",
           "x-sck-signature", "x-sck-timestamp", "x-sck-ans-id", "x-sck-organization",
           "x-sck-nonce", "x-sck-key-id", "host", "accept", "content-type"]


class Recorder:
    """ASGI middleware writing one JSON line per request before passing it on."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {}
        for name, value in scope["headers"]:
            name = name.decode("latin-1")
            if name in HEADERS:
                headers[name] = value.decode("latin-1")
        calls = []
        try:
            parsed = json.loads(body) if body else None
            for message in parsed if isinstance(parsed, list) else [parsed] if parsed else []:
                if isinstance(message, dict) and "method" in message:
                    calls.append({"method": message["method"],
                                  "tool": (message.get("params") or {}).get("name")})
        except ValueError:
            calls.append({"unparsed": True})
        with open(RECORD, "a") as f:
            f.write(json.dumps({"method": scope["method"], "path": scope["path"],
                                "query": scope.get("query_string", b"").decode(),
                                "headers": headers, "body": body.decode("utf-8", "replace"),
                                "calls": calls}) + "\n")
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


app = Recorder(server.streamable_http_app(host="127.0.0.1"))
uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
