"""The matrix under real servers on 127.0.0.1, every request sent as raw bytes.

WSGI configurations under gunicorn (``sync`` and ``gthread`` workers) and hypercorn; ASGI ones under
uvicorn and hypercorn; each server mounted plainly, under a prefix (the application's own mount)
and under a root path (gunicorn's ``SCRIPT_NAME``, ``--root-path`` for uvicorn and hypercorn). One
server process serves every configuration of its family for one mount (they are told apart by a
request header, never by the path), so each server starts once.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import pytest

from .._servers import Server, gunicorn, hypercorn, raw_response, uvicorn
from .beyond import ATTEMPTS, TRIED, outcome
from .matrix import (
    BY_KEY,
    CONFIGS,
    MOUNTS,
    ROOT,
    SERVERS,
    Answer,
    Config,
    Row,
    probes,
    raw_request,
    request_parts,
    tally,
)

pytestmark = pytest.mark.slow

Spec = tuple[str, str, str]  # family, server, mount


@contextlib.contextmanager
def serve(spec: Spec) -> Iterator[Server]:
    family, server, mount = spec
    app = f"tests.guard.spellings.serve_{family}:app"
    env = {"MATRIX_MOUNT": mount}
    root = ROOT if mount == "root" else ""
    if server.startswith("gunicorn"):
        if root:
            env["SCRIPT_NAME"] = root
        threaded = server == "gunicorn-gthread"
        with gunicorn(app, env, workers=1, worker_class="gthread" if threaded else "sync",
                      threads=2 if threaded else 1) as running:  # fmt: skip
            yield running
    elif server == "uvicorn":
        with uvicorn(app, env, root_path=root) as running:
            yield running
    else:
        with hypercorn(app, env, asgi=family == "asgi", root_path=root) as running:
            yield running


class Servers:
    """At most one server running: the tests come grouped by server, so each starts once."""

    def __init__(self) -> None:
        self._spec: Spec | None = None
        self._stack = contextlib.ExitStack()
        self._server: Server | None = None

    def get(self, spec: Spec) -> Server:
        if spec != self._spec or self._server is None:
            self.close()
            self._server = self._stack.enter_context(serve(spec))
            self._spec = spec
        return self._server

    def close(self) -> None:
        self._stack.close()
        self._server = None
        self._spec = None


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    pool = Servers()
    try:
        yield pool
    finally:
        pool.close()


def _cases() -> list[object]:
    cases: list[object] = []
    for family in ("wsgi", "asgi"):
        for server in SERVERS[family]:
            for mount in MOUNTS:
                spec = (family, server, mount)
                for config in CONFIGS:
                    if config.family == family:
                        cases.append(pytest.param(spec, config.key, "", id=f"{config.key}-{mount}-{server}"))
                if mount == "plain":  # the attempts beyond spellings, while this server runs
                    for key, path in TRIED[family]:
                        cases.append(pytest.param(spec, key, path, id=f"beyond-{key}-{server}"))
    return cases


def run_config(server: Server, config: Config, mount: str, name: str) -> Row:
    results = []
    for probe in probes(config, mount, name):
        headers, body = request_parts(config, probe, mount, name)
        status, answer_headers, answer_body = raw_response(
            server.port, raw_request(probe.method, probe.target, headers, body)
        )
        results.append((probe, Answer(status, answer_headers, answer_body)))
    return tally(config, mount, name, results)


@pytest.mark.parametrize(("spec", "key", "beyond"), _cases())
def test_no_unsigned_request_reaches_a_protected_view(
    servers: Servers,
    matrix_rows: list[Row],
    beyond_seen: dict[str, dict[str, Counter[str]]],
    spec: Spec,
    key: str,
    beyond: str,
) -> None:
    """Every spelling of every protected path (or, with ``beyond``, the attempts of :mod:`.beyond` on
    that path): none reaches the view; signed requests and unprotected views work."""
    family, name, mount = spec
    server = servers.get(spec)
    config = BY_KEY[key]
    if beyond:
        reached = []
        for attempt in ATTEMPTS:
            status, headers, body = raw_response(server.port, attempt.request(key, beyond), timeout=5)
            answer = Answer(status, headers, body)
            beyond_seen[f"{name} ({family})"][attempt.label][outcome(answer)] += 1
            if answer.outcome() == "reached":
                reached.append(attempt.label)
        assert reached == []
        return
    row = run_config(server, config, mount, name)
    matrix_rows.append(row)
    assert row.reached == 0, row.reached_targets
    assert row.sanity_failures == [], (row.sanity_failures, server.log()[-3000:])
    assert row.sent >= 40 * len(config.protected)
