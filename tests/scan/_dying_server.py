"""Run as a script: an HTTP server that answers ANSWERS requests (reading each body whole), then
exits abruptly, as a server killed mid-scan would. Prints its port on stdout."""

from __future__ import annotations

import contextlib
import os
import socket
import sys

import h11


def main() -> None:
    answers = int(sys.argv[1])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    for _ in range(answers):
        conn, _ = listener.accept()
        c = h11.Connection(h11.SERVER)
        while True:
            event = c.next_event()
            if event is h11.NEED_DATA:
                c.receive_data(conn.recv(65536))
                continue
            if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        head = [("Content-Length", "3"), ("Connection", "close")]
        with contextlib.suppress(OSError, h11.LocalProtocolError):
            conn.sendall((c.send(h11.Response(status_code=401, headers=head)) or b"") + b"no\n")
        conn.close()
    os._exit(1)  # dies without closing anything gracefully


if __name__ == "__main__":
    main()
