"""Waiting for a server is not fooled by a loopback socket connected to itself.

On Linux, connecting to a loopback port nothing listens on can succeed: when the kernel picks that
very port as the source, the socket connects to itself (TCP simultaneous open). A wait that took
that for a listening server returned before the server was up, and held its port meanwhile.
"""

from __future__ import annotations

import socket
import sys

import pytest

from hmacguard.errors import TargetError
from hmacguard.lab import free_port
from hmacguard.lab.serve import connected_to_itself, wait_for_port


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="self-connection is Linux's behaviour")
def test_a_socket_connected_to_itself_is_told_apart_from_a_server() -> None:
    port = free_port()
    with socket.socket() as itself:
        itself.bind(("127.0.0.1", port))
        itself.connect(("127.0.0.1", port))  # simultaneous open with itself: nothing listens
        assert connected_to_itself(itself)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2) as client:
            assert not connected_to_itself(client)


def test_an_unconnected_socket_is_not_connected_to_itself() -> None:
    with socket.socket() as alone:
        assert not connected_to_itself(alone)


def test_waiting_on_a_port_nothing_listens_on_times_out() -> None:
    with pytest.raises(TargetError, match="nothing listened"):
        wait_for_port("127.0.0.1", free_port(), timeout=0.3)
