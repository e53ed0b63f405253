"""A TLS target: scanned with --insecure against a self-signed certificate; refused without it."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import threading
from pathlib import Path

import pytest

from hmacguard.errors import TargetError
from hmacguard.scan import Budget, PhaseSelection, PidObserver, ScanTarget, run_scan
from hmacguard.scan.config import KiB, MiB
from tests.scan import _servers

pytestmark = pytest.mark.slow


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    crypto = pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    assert crypto
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    loopback = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(x509.random_serial_number()).add_extension(loopback, critical=False)
    builder = builder.not_valid_before(now - datetime.timedelta(minutes=1))
    cert = builder.not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256())
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_tls_target_with_insecure(tmp_path: Path) -> None:
    context = self_signed(tmp_path)
    inner = _servers.h11_handler(lambda r, n: (413, []) if n > 64 * KiB else (401, []))

    def tls(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5)
        with context.wrap_socket(conn, server_side=True) as wrapped:
            wrapped.settimeout(0.2)
            inner(wrapped, stop)

    budget = Budget(bytes=32 * MiB, ladder=(KiB, MiB), max_size=MiB, burst_requests=4, burst_concurrency=2,
                    request_timeout=3)  # fmt: skip
    with _servers.serve(tls) as server:
        url = f"https://127.0.0.1:{server.port}/webhook"
        with pytest.raises(TargetError, match=r"certificate verify failed .*--insecure"):
            run_scan(ScanTarget(url), budget)
        report = run_scan(ScanTarget(url, insecure=True), budget)
    statuses = {m.exchange.status for m in report.measurements}
    assert statuses >= {401, 413} and not report.unavailable
    rules = {f.rule for f in report.findings}
    assert "no-rate-limit" in rules and rules <= {"no-rate-limit", "late-rejection"}


def test_held_uploads_over_tls_stay_held(tmp_path: Path) -> None:
    # A non-blocking TLS socket says "want read" for a record that is not application data (TLS 1.3
    # sends session tickets after the handshake): an upload that hears that is still held.
    context = self_signed(tmp_path)
    inner = _servers.h11_handler(lambda r, n: (401, []))

    def tls(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5)
        with context.wrap_socket(conn, server_side=True) as wrapped:
            wrapped.settimeout(0.2)
            inner(wrapped, stop)

    budget = Budget(bytes=32 * MiB, request_timeout=3, held_uploads=20)
    with _servers.serve(tls) as server:
        target = ScanTarget(f"https://127.0.0.1:{server.port}/webhook", insecure=True)
        # The server runs in this process: its memory says nothing here, the connections do.
        report = run_scan(target, budget, observer=PidObserver(os.getpid()),
                          selection=PhaseSelection.of(["held-uploads"]))  # fmt: skip
    held = report.held
    assert held is not None and (held.opened, held.held, dict(held.answered)) == (20, 20, {}), held
    assert held.held_bytes == 20 * (budget.held_size - 64)
