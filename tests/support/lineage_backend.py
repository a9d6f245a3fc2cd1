"""A lineage backend on 127.0.0.1 standing in for Marquez: keeps every POST (path, headers with
lower-case names, JSON body) and answers `status`. Shared by tests/interop and tests/airflow, which
run in different venvs (standard library only)."""

from __future__ import annotations

import http.server
import json
import threading


class Backend:
    def __init__(self, status: int = 201):
        self.received: list[tuple[str, dict, dict]] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def events(self) -> list[dict]:
        return [body for _, _, body in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
