"""The upstream of tests/usage_e2e.rs (Python's http.server): prints its port, then answers

- GET/POST <base>/ok[?tokens=V]  200 JSON, with `X-Usage-Tokens: V` when V is given;
- GET <base>/fail                500;
- GET <base>/stream              200 text/event-stream: 16 events of 64 KiB (1 MiB), written
                                 and flushed one by one;
- POST <base>/mcp                a JSON-RPC answer to one request (`X-Usage-Tokens: 10`):
                                 `tools/list` lists echo and add, `tools/call` answers "done";
- GET /__seen                    what it received so far: {"<METHOD> <path>": count, "tools": [...]}
                                 (asked directly, never through sck).
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SEEN = {"tools": []}
LOCK = threading.Lock()
EVENT = b"data: " + b"x" * (64 * 1024 - 8) + b"\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body, content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        if url.path == "/__seen":
            with LOCK:
                return self.answer(200, json.dumps(SEEN).encode())
        with LOCK:
            key = f"{self.command} {url.path}"
            SEEN[key] = SEEN.get(key, 0) + 1
        if url.path.endswith("/ok"):
            tokens = parse_qs(url.query).get("tokens")
            headers = [("X-Usage-Tokens", tokens[0])] if tokens else []
            return self.answer(200, b'{"ok":true}', headers=headers)
        if url.path.endswith("/fail"):
            return self.answer(500, b'{"error":"boom"}')
        if url.path.endswith("/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(16 * len(EVENT)))
            self.end_headers()
            for _ in range(16):
                self.wfile.write(EVENT)
                self.wfile.flush()
            return None
        if url.path.endswith("/mcp"):
            message = json.loads(body)
            if message.get("method") == "tools/call":
                with LOCK:
                    SEEN["tools"].append(message["params"]["name"])
            result = {"content": [{"type": "text", "text": "done"}]}
            if message.get("method") == "tools/list":
                result = {"tools": [{"name": name, "inputSchema": {"type": "object"}}
                                    for name in ("echo", "add")]}
            answer = {"jsonrpc": "2.0", "id": message.get("id"), "result": result}
            return self.answer(200, json.dumps(answer).encode(),
                               headers=[("X-Usage-Tokens", "10")])
        return self.answer(404, b'{"error":"no such path"}')

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
