#!/usr/bin/env python3
"""A stand-in for MondiaPay's token endpoint, for deploy/container-test.sh.

Listens on every interface (the container reaches it through the host's bridge address) on a
port the kernel picks, prints that port on one line once it accepts connections, then answers
  POST /v1/api/oauth/token   MondiaPay's token answer, a fresh user token for each call
  GET  /calls                how many token calls it has answered (the test asserts it)
Anything else is 404. Standard library only: the test needs nothing from PyPI.
"""

import http.server
import json
import secrets
import sys
import threading

calls = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global calls
        if self.path.split("?", 1)[0] != "/v1/api/oauth/token":
            return self.answer(404, {"error": "NOT_FOUND"})
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with lock:
            calls += 1
        self.answer(
            200,
            {
                "access_token": "U" + secrets.token_hex(16),
                "token_type": "bearer",
                "expires_in": "43200",
            },
        )

    def do_GET(self):
        if self.path == "/calls":
            with lock:
                return self.answer(200, {"calls": calls})
        self.answer(404, {"error": "NOT_FOUND"})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        # The query string carries the client secret and the code: log nothing.
        pass


def main():
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
