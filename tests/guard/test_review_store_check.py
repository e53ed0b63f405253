"""Adversarial review of ``hmacguard store check URL``: hostile or odd inputs on real sockets and a
real redis-server on 127.0.0.1, run as a user runs it (the program in a subprocess)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from ._redis_topologies import redis_cluster, redis_single

SECRET = "s3cr3t-Review-pw"


def run_check(url: str, *options: str, timeout: str = "0.5") -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [sys.executable, "-m", "hmacguard", "store", "check", url, "--timeout", timeout, *options],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return run


def assert_clean(run: subprocess.CompletedProcess[str]) -> None:
    whole = run.stdout + run.stderr
    assert "Traceback" not in whole, whole
    assert SECRET not in whole, whole
    assert run.returncode in (0, 1, 2), run.returncode


@pytest.mark.parametrize("url", [f"redis://:{SECRET}@[::1", "redis://[::1", f"redis://:{SECRET}@[zz]:6379"])
def test_a_malformed_url_is_one_line_and_exit_2(url: str) -> None:
    """Was (strict xfail, BUG): the secret-masking helper ran urlsplit before anything caught its
    ValueError ("Invalid IPv6 URL"): a traceback and exit 1 instead of "bad Redis URL" and exit 2."""
    run = run_check(url)
    assert_clean(run)
    assert run.returncode == 2
    assert "bad Redis URL" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_an_empty_url_is_a_readable_error() -> None:
    """Was (strict xfail, BUG): the scrubber replaced the URL "" in the message, which inserts the
    redacted form between every character ("://b://a://d:// ...")."""
    run = run_check("")
    assert_clean(run)
    assert run.returncode == 2
    assert "bad Redis URL" in run.stderr and "://b://a" not in run.stderr


@pytest.fixture
def silent_port() -> Iterator[tuple[int, list[int]]]:
    """A port that accepts connections and never answers; the list counts the connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    accepted: list[int] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            accepted.append(1)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@pytest.mark.parametrize(
    "kind",
    [
        "redis",
        "redis+cluster",
        "redis+sentinel",
    ],
)
def test_a_silent_port_is_bounded_by_the_timeout(kind: str, silent_port: tuple[int, list[int]]) -> None:
    """Was (strict xfail, BUG): a Sentinel that accepts and never answers took 8 s and 11 connections
    at --timeout 0.5 (redis-py 8 gives each Sentinel client 10 retries with backoff)."""
    port, accepted = silent_port
    url = f"{kind}://:{SECRET}@127.0.0.1:{port}" + ("/svc" if kind == "redis+sentinel" else "")
    start = time.monotonic()
    run = run_check(url)
    elapsed = time.monotonic() - start
    assert_clean(run)
    assert run.returncode == 2
    assert elapsed < 4.0, f"{elapsed:.1f} s"  # interpreter start-up plus a few timeouts
    assert len(accepted) <= 3, len(accepted)


@pytest.mark.redis
def test_a_manual_bgsave_is_not_persistence() -> None:
    """Was (strict xfail, BUG): with AOF off and no save points, one BGSAVE (rdb_saves 1) was taken
    for persistence, and the check passed with exit 0; a restart loses every replay id."""
    with redis_single(
        args=["--appendonly", "no", "--save", "", "--maxmemory-policy", "noeviction"]
    ) as server:
        client = server.client()
        client.bgsave()
        deadline = time.monotonic() + 10
        while client.info("persistence").get("rdb_bgsave_in_progress") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(client.info("persistence").get("rdb_saves", 0)) >= 1
        run = run_check(server.url, "--format", "json", timeout="3")
        assert_clean(run)
        assert run.returncode == 1, run.stdout + run.stderr
        assert '"no-persistence"' in run.stdout


@pytest.mark.redis
def test_a_refused_script_names_the_refused_command() -> None:
    """Was (strict xfail, BUG): the direct EVAL ran inside the handler of the store's error, so its
    NoPermissionError's __context__ was that error and the one-line reason ended with "the replay
    store is unavailable" instead of the server's "no permissions to run the 'eval' command"."""
    with redis_single() as server:
        server.client().execute_command(
            "ACL", "SETUSER", "noscripts", "on", f">{SECRET}", "~*", "&*", "+@all", "-@scripting"
        )
        run = run_check(f"redis://noscripts:{SECRET}@127.0.0.1:{server.port}/0", timeout="3")
        assert_clean(run)
        assert run.returncode == 2
        assert "Lua script was refused" in run.stderr and "no permissions" in run.stderr, run.stderr


@pytest.mark.redis
def test_a_cluster_that_is_down_is_not_reported_as_a_script_refusal() -> None:
    """Was (strict xfail, BUG): ClusterDownError is a ResponseError, so a Cluster with a slot gap
    (cluster-require-full-coverage yes: every node answers CLUSTERDOWN) was diagnosed as "a Lua
    script was refused" -- an SRE would go and change the ACL."""
    import redis

    with redis_cluster() as cluster:
        clients = [redis.Redis(port=port) for port in cluster.ports]
        owner = next(c for c in clients if c.cluster("countkeysinslot", 100) is not None)
        for client in clients:
            with contextlib.suppress(redis.ResponseError):
                client.execute_command("CLUSTER DELSLOTS", 100)
        deadline = time.monotonic() + 10
        while owner.cluster("info").get("cluster_state") != "fail" and time.monotonic() < deadline:
            time.sleep(0.1)
        run = run_check(cluster.url, timeout="1")
        assert_clean(run)
        assert run.returncode == 2
        assert "Lua script" not in run.stderr and "ClusterDown" in run.stderr, run.stderr


@pytest.mark.redis
def test_a_killed_check_leaves_only_its_own_keys_with_short_ttls() -> None:
    """SIGKILL at several points of the exercise (no clean-up runs): every key left is the check's
    (it contains ``hmacguard:check:`` -- the rate limiter's are ``LIMITS:LIMITER/hmacguard:check:...``
    and ``{hmacguard:check:...}``, not under the prefix) and lapses within a minute; a real key
    written before is untouched. A check that completes leaves nothing."""
    import signal

    with redis_single() as server:
        client = server.client()
        client.set("hmacguard:replay:real-delivery", "1")  # a guard's key, no TTL
        client.set("LIMITS:LIMITER/hmacguard/requests/client-a/10/1/minute", "3")
        real = {k for k in client.scan_iter()}
        base = [sys.executable, "-m", "hmacguard", "store", "check", server.url, "--timeout", "2"]
        for delay in (0.45, 0.55, 0.65, 0.75):
            process = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            for key in set(client.scan_iter()) - real:
                assert b"hmacguard:check:" in key, key
                assert 0 < client.pttl(key) <= 60_000, (key, client.pttl(key))
            for key in set(client.scan_iter()) - real:
                client.delete(key)
        run = run_check(server.url, timeout="2")
        assert run.returncode in (0, 1), run.stderr
        assert set(client.scan_iter()) == real
        assert (
            client.get("hmacguard:replay:real-delivery") == b"1"
            and client.ttl("hmacguard:replay:real-delivery") == -1
        )
