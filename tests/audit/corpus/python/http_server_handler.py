# ruff: noqa
# fmt: off
# http.server reads as many bytes as the client's Content-Length says.
from http.server import BaseHTTPRequestHandler


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)  # expect: py-unbounded-body-read
        self.send_response(200)
        self.end_headers()
        self.wfile.write(str(len(body)).encode())
