"""The upstream of tests/tls_e2e.rs: Python's http.server behind the standard library's ssl
module, serving the certificate chain and key files named on the command line.

    python3 upstream.py CERT_PEM KEY_PEM

Prints "TLS_PORT CONTROL_PORT" (both on 127.0.0.1), then answers, over TLS:

- any method <path>/ok   200 {"ok":true};
- POST <path>/mcp        a JSON-RPC answer to one request: tools/call answers "done";
- anything else          404;

and, on the plain-HTTP control port (asked directly by the test, never through sck):

- GET /__seen            {"connections": N, "handshake_failures": ["<ssl error>", ...],
                          "requests": [{"method", "path", "query", "headers", "body"}, ...]}
                         (header names lower-case).

The TLS handshake runs in each connection's own thread, so a failed one is recorded and
never stops the server.
"""

import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SEEN = {"connections": 0, "handshake_failures": [], "requests": []}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Upstream(Handler):
    def handle_any(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        with LOCK:
            SEEN["requests"].append({
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            })
        if url.path.endswith("/ok"):
            return self.answer(200, b'{"ok":true}')
        if url.path.endswith("/mcp") and self.command == "POST":
            message = json.loads(body)
            answer = {"jsonrpc": "2.0", "id": message.get("id"),
                      "result": {"content": [{"type": "text", "text": "done"}]}}
            return self.answer(200, json.dumps(answer).encode())
        return self.answer(404, b'{"error":"no such path"}')

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class Control(Handler):
    def do_GET(self):
        if self.path != "/__seen":
            return self.answer(404, b"{}")
        with LOCK:
            return self.answer(200, json.dumps(SEEN).encode())


class TlsServer(ThreadingHTTPServer):
    """Accepts plain TCP and handshakes in the connection's thread."""

    def __init__(self, context):
        super().__init__(("127.0.0.1", 0), Upstream)
        self.context = context

    def finish_request(self, request, client_address):
        with LOCK:
            SEEN["connections"] += 1
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            with LOCK:
                SEEN["handshake_failures"].append(str(error))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    tls = TlsServer(context)
    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(tls.server_address[1], control.server_address[1], flush=True)
    tls.serve_forever()


main()
