"""``hmacguard store check URL`` against real redis-servers started by the tests: one server, a
TLS + ACL Cluster and Sentinel (tests/guard/_redis_topologies.py), run as a user runs it (the
installed program in a subprocess), output read as text and as JSON (validated against
docs/store-check.schema.json), and grepped whole for the secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest

from ._redis_topologies import (
    Access,
    Cluster,
    SentinelSetup,
    Single,
    redis_cluster,
    redis_sentinel,
    redis_single,
)
from .test_redis_tls_auth import PASSWORD, SECRETS, WRONG, certificates, production  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.redis]
SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "store-check.schema.json").read_text())
DURABLE = ["--appendonly", "yes", "--maxmemory-policy", "noeviction"]
TIMEOUT = "3"


def check(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [sys.executable, "-m", "hmacguard", "store", "check", url, "--timeout", TIMEOUT, *options],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    whole = run.stdout + run.stderr
    for secret in SECRETS:
        assert secret not in whole, f"secret {secret!r} in the output"
    assert "Traceback" not in whole
    if "--format" in options and "json" in options:
        jsonschema.validate(json.loads(run.stdout), SCHEMA, cls=jsonschema.Draft7Validator)
    return run


def check_json(url: str) -> tuple[int, dict[str, Any]]:
    run = check(url, "--format", "json")
    return run.returncode, json.loads(run.stdout)


def probe_keys(clients: list[Any]) -> list[bytes]:
    return [key for client in clients for key in client.scan_iter(match="hmacguard:check:*", count=1000)]


def warning_ids(report: dict[str, Any]) -> list[str]:
    return [w["id"] for w in report["warnings"]]


def test_the_schema_is_a_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_a_durable_server_passes_with_no_warning() -> None:
    with redis_single(args=DURABLE) as server:
        run = check(server.url)
        assert run.returncode == 0, run.stderr
        assert "no warning" in run.stdout
        for operation in ("replay hold + commit", "replay hold + release", "rate-limit admission + settle"):
            assert operation in run.stdout
        code, report = check_json(server.url)
        assert (code, report["status"], report["warnings"]) == (0, "ok", [])
        assert report["deployment"] == "server" and report["tls"] is False and report["user"] == "default"
        assert report["server_version"].startswith(("redis ", "valkey "))
        assert len(report["exercise"]) == 3 and all(len(t["samples_ms"]) == 3 for t in report["exercise"])
        client = server.client()
        assert probe_keys([client]) == []
        assert client.dbsize() == 0  # nothing else left either (the rate limiter's keys)


def test_a_server_without_persistence_warns() -> None:
    with redis_single() as server:  # --save "" --appendonly no
        run = check(server.url)
        assert run.returncode == 1, run.stderr
        assert "WARNING no-persistence" in run.stdout
        code, report = check_json(server.url)
        assert (code, report["status"], warning_ids(report)) == (1, "warnings", ["no-persistence"])
        assert "restart forgets every replay id" in report["warnings"][0]["message"]
        assert server.client().dbsize() == 0


def test_an_evicting_policy_warns() -> None:
    with redis_single(args=[*DURABLE, "--maxmemory-policy", "volatile-lru"]) as server:
        code, report = check_json(server.url)
        assert (code, warning_ids(report)) == (1, ["eviction-policy"])
        assert "volatile-lru" in report["warnings"][0]["message"]
        assert "noeviction" in report["warnings"][0]["advice"]
        run = check(server.url)
        assert run.returncode == 1 and "WARNING eviction-policy" in run.stdout


def test_a_user_who_may_not_run_scripts_makes_it_unusable() -> None:
    with redis_single(args=DURABLE) as server:
        server.client().execute_command(
            "ACL", "SETUSER", "noscripts", "on", f">{PASSWORD}", "~*", "&*", "+@all", "-@scripting"
        )
        url = f"redis://noscripts:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}/0"
        run = check(url)
        assert run.returncode == 2
        assert run.stdout == "" and len(run.stderr.splitlines()) == 1
        assert "Lua script was refused" in run.stderr and "NoPermissionError" in run.stderr
        assert probe_keys([server.client()]) == []


def test_an_unreachable_port_is_one_line() -> None:
    with redis_single() as server:
        port = server.port
    run = check(f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0")
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1 and "unreachable" in run.stderr
    code, report = check_json(f"redis://127.0.0.1:{port}/0")
    assert code == 2 and report["status"] == "unusable"


def test_a_malformed_url_is_one_line() -> None:
    run = check(f"redis+cluster://guard:{WRONG}@127.0.0.1:1/0")
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1


def test_a_cluster_primary_with_a_replica_is_not_named() -> None:
    with redis_cluster(3, replica_of=0) as cluster:
        code, report = check_json(cluster.url)
        assert code == 1
        replica = [n for n in report["nodes"] if n["role"] == "replica"]
        assert [(n["address"], n["primary"]) for n in replica] == [
            (f"127.0.0.1:{cluster.replica_port}", f"127.0.0.1:{cluster.ports[0]}")
        ]
        alone = next(w for w in report["warnings"] if w["id"] == "primary-without-replica")
        assert alone["message"].startswith("2 of 3 primaries have no replica")
        assert f"127.0.0.1:{cluster.ports[0]}" not in alone["message"]


# -- production: TLS only, a private CA, an ACL user; Sentinel with its own password ---------------


@pytest.fixture(scope="module")
def cluster(production: Access) -> Iterator[Cluster]:  # noqa: F811
    with redis_cluster(3, production) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def sentinel(production: Access) -> Iterator[SentinelSetup]:  # noqa: F811
    with redis_sentinel(access=production) as setup:
        yield setup


@pytest.fixture(scope="module")
def single(production: Access) -> Iterator[Single]:  # noqa: F811
    with redis_single(production, args=DURABLE) as server:
        yield server


def test_a_tls_acl_cluster_is_exercised_and_its_topology_reported(cluster: Cluster) -> None:
    code, report = check_json(cluster.url)
    assert code == 1  # the test Cluster keeps nothing on disk and has no replica
    assert report["deployment"] == "cluster" and report["tls"] is True and report["user"] == "guard"
    primaries = [n for n in report["nodes"] if n["role"] == "primary"]
    assert sorted(int(n["address"].rpartition(":")[2]) for n in primaries) == sorted(cluster.ports)
    assert sum(n["slots"] for n in primaries) == report["slots_covered"] == 16384
    assert set(warning_ids(report)) == {"no-persistence", "primary-without-replica"}
    run = check(cluster.url)
    assert run.returncode == 1 and "tls:        on" in run.stdout and "5461 slots" in run.stdout
    import redis

    clients = [
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=3, **cluster.access.client_kwargs())
        for port in cluster.ports
    ]
    assert probe_keys(clients) == []
    assert sum(client.dbsize() for client in clients) == 0


def test_a_tls_acl_sentinel_is_exercised_and_its_topology_reported(sentinel: SentinelSetup) -> None:
    code, report = check_json(sentinel.url)
    assert code == 1
    assert report["deployment"] == "sentinel" and report["service"] == "hmacguard"
    assert report["tls"] is True and report["user"] == "guard"
    roles = {(n["role"], int(n["address"].rpartition(":")[2])) for n in report["nodes"]}
    assert roles == {("primary", sentinel.primary_port), ("replica", sentinel.replica_port)}
    assert "min-replicas-to-write" in warning_ids(report) and "no-replica" not in warning_ids(report)
    run = check(sentinel.url)
    assert (
        f"primary 127.0.0.1:{sentinel.primary_port}, replicas: 127.0.0.1:{sentinel.replica_port}"
        in run.stdout
    )
    primary = sentinel.sentinel_client().master_for("hmacguard")
    assert probe_keys([primary]) == [] and primary.dbsize() == 0


def test_a_durable_tls_acl_server_passes(single: Single) -> None:
    run = check(single.url)
    assert run.returncode == 0, run.stderr
    assert "tls:        on" in run.stdout and "user:       guard" in run.stdout


@pytest.mark.parametrize("topology", ["single", "cluster", "sentinel"])
def test_a_wrong_password_is_one_line_without_the_secret(
    topology: str, request: pytest.FixtureRequest
) -> None:
    setup = request.getfixturevalue(topology)
    run = check(setup.url_with(WRONG))
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert "authentication refused" in run.stderr and "***" in run.stderr


@pytest.mark.parametrize("topology", ["single", "cluster", "sentinel"])
def test_a_private_ca_not_given_is_a_tls_failure(topology: str, request: pytest.FixtureRequest) -> None:
    setup = request.getfixturevalue(topology)
    run = check(setup.url_with(ssl_ca_certs=""))
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert "TLS failure" in run.stderr
