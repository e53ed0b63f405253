"""The matrix in-process: every configuration, mounted plainly, under a prefix and under a root path.

The applications run in a child interpreter (Django's settings are per process); see
:mod:`.inprocess` for the environ and scope each request gets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hmacguard import WSGIGuard

from .apps import verifier
from .inprocess import call_wsgi, servers, wsgi_environ
from .matrix import (
    CONFIGS,
    MOUNTS,
    Config,
    Row,
    mount_label,
    probes,
    request_parts,
    spellings,
    tally,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
CASES = [
    pytest.param(config, mount, server, id=f"{config.key}-{mount}-{server.replace(' ', '_')}")
    for mount in MOUNTS
    for config in CONFIGS
    for server in servers(config.family, mount)
]


FUZZ_COUNT, FUZZ_SEED = 120, 10


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.guard.spellings.inprocess", str(FUZZ_COUNT), str(FUZZ_SEED)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


@pytest.fixture(scope="module")
def rows(results: dict[str, Any]) -> dict[tuple[str, str, str], Row]:
    found = [Row.from_dict(d) for d in results["rows"]]
    return {(r.integration, r.mount, r.server): r for r in found}


def test_no_random_unsigned_target_reaches_a_protected_view(results: dict[str, Any]) -> None:
    """Random targets built from the spellings' tricks, per configuration, mount and driver."""
    fuzz = results["fuzz"]
    assert fuzz["sent"] >= FUZZ_COUNT * len(CASES)
    assert fuzz["reached"] == []


@pytest.mark.parametrize(("config", "mount", "server"), CASES)
def test_no_unsigned_spelling_reaches_a_protected_view(
    rows: dict[tuple[str, str, str], Row], matrix_rows: list[Row], config: Config, mount: str, server: str
) -> None:
    row = rows[(config.name, mount_label(config, mount), server)]
    matrix_rows.append(row)
    assert row.sent >= 40 * len(config.protected)
    assert row.reached == 0, row.reached_targets
    # Signed requests reach the view, unprotected views and near misses are not refused.
    assert row.sanity_failures == []


def test_every_protected_path_gets_at_least_40_distinct_spellings() -> None:
    for config in CONFIGS:
        for prefix in ("", config.prefix, "/api"):
            for path in config.protected:
                targets = [t for _, t in spellings(prefix, path)]
                assert len(set(targets)) == len(targets) >= 40, (config.key, prefix, path)


def _string_guard(app: Any) -> Any:
    """A guard that compares PATH_INFO as a string: what the matrix must catch."""
    guarded = WSGIGuard(app, verifier=verifier(), paths=["/webhook"])

    def naive(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/webhook":
            return guarded(environ, start_response)
        return app(environ, start_response)

    return naive


def test_the_matrix_sees_a_bypass() -> None:
    """The same requests, through a guard that matches the raw path, reach the view: the matrix can fail."""
    from flask import Flask, Response

    from .matrix import PROTECTED_MARK, VIEW_HEADER

    app = Flask("naive")
    app.url_map.strict_slashes = False

    @app.route("/webhook", methods=["POST"])
    def webhook() -> Response:
        return Response(PROTECTED_MARK, headers={VIEW_HEADER: "protected"})

    config = next(c for c in CONFIGS if c.key == "flask-ext-paths")
    naive = _string_guard(app)
    results = []
    for probe in probes(config, "plain", "in-process"):
        headers, body = request_parts(config, probe, "plain", "in-process")
        results.append(
            (probe, call_wsgi(naive, wsgi_environ(probe.method, probe.target, headers, body, script_name="")))
        )
    row = tally(config, "plain", "in-process", results)
    reached = {t.split(" (")[0] for t in row.reached_targets}
    assert {"'//webhook'", "'/%2Fwebhook'", "'/webhook/'", "'http://x//webhook'"} <= reached
