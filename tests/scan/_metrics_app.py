"""Run as a script: a small HTTP receiver that exposes its own process_resident_memory_bytes through
prometheus_client on a second port, and (with ``leak``) keeps every body it reads. Prints
"APP_PORT METRICS_PORT"."""

from __future__ import annotations

import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import start_http_server

KEPT: list[bytes] = []
LEAK = len(sys.argv) > 1 and sys.argv[1] == "leak"


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if LEAK:
            KEPT.append(body)
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    start_http_server(metrics_port, addr="127.0.0.1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    print(server.server_address[1], metrics_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
