"""The official MCP Python SDK's streamable-HTTP client, driven through sck by tests/mcp_e2e.rs.

Usage: client.py URL TOKEN SIGNAL_DIR SCENARIO

Prints one JSON object with what the session saw. Scenarios:
- `session`: initialize, list tools, call `echo` and `add` (allowed), `shell.exec`
  (which the default policy denies at LoA 2), and `count_slowly` with a progress callback that creates
  SIGNAL_DIR/<n> for each notification (the upstream waits for it before its next step);
- `echo`: initialize and call `echo` once (for a token that may have been revoked).
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

URL, TOKEN, SIGNALS, SCENARIO = sys.argv[1:5]


def text_of(result):
    return [getattr(c, "text", None) for c in result.content]


async def call(session, name, arguments, **kwargs):
    try:
        result = await session.call_tool(name, arguments, **kwargs)
        return {"ok": True, "is_error": bool(result.is_error), "text": text_of(result)}
    except MCPError as e:
        return {"ok": False, "code": e.error.code, "message": e.error.message,
                "data": e.error.data}


async def main():
    out = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
            async with streamable_http_client(URL, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    init = await session.initialize()
                    out["protocol"] = init.protocol_version
                    out["server"] = init.server_info.name
                    if SCENARIO == "session":
                        tools = await session.list_tools()
                        out["tools"] = sorted(t.name for t in tools.tools)
                        out["echo"] = await call(session, "echo", {"text": "hi"})
                        out["add"] = await call(session, "add", {"a": 2, "b": 3})
                        out["denied"] = await call(session, "shell.exec", {"command": "id"})
                        progress = []

                        async def on_progress(value, total, message):
                            progress.append(value)
                            open(os.path.join(SIGNALS, str(int(value))), "w").close()

                        out["slow"] = await call(session, "count_slowly", {"steps": 3},
                                                 progress_callback=on_progress)
                        out["progress"] = progress
                    else:
                        out["echo"] = await call(session, "echo", {"text": "again"})
    except BaseException as e:  # the SDK raises transport failures inside exception groups
        out["failed"] = repr(e)
        status = []

        def walk(error):
            response = getattr(error, "response", None)
            if response is not None:
                status.append(response.status_code)
            for inner in getattr(error, "exceptions", []) or []:
                walk(inner)
            if error.__cause__ is not None:
                walk(error.__cause__)

        walk(e)
        out["http_status"] = status
    print(json.dumps(out))


asyncio.run(main())
