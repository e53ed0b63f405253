"""The matrix in-process: the applications called directly, with the environ / scope a server builds.

WSGI requests get gunicorn's environ (its split of the request target, ``PATH_INFO`` percent-decoded
once into a latin-1 string, ``SCRIPT_NAME`` cut off the front under a root path -- a target that
does not start with it is gunicorn's 500). ASGI requests get uvicorn's scope (``path`` the target
before ``?`` percent-decoded as UTF-8, no absolute-form parsing); under a root path both styles
servers use: ``path = root_path + path`` for a target the proxy already stripped (uvicorn), and
``path`` as sent with ``root_path`` beside it (hypercorn).

Run as ``python -m tests.guard.spellings.inprocess [COUNT SEED]``: it prints the rows as JSON, and
what ``COUNT`` random targets per configuration (built from :data:`ATOMS`) did. The tests run it in
a child interpreter, because Django's settings can be configured once per process.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from .._inprocess import call_wsgi as call_wsgi_app
from .matrix import (
    CONFIGS,
    MOUNTS,
    ROOT,
    Answer,
    Config,
    Probe,
    Row,
    probes,
    request_parts,
    request_prefix,
    tally,
)

WSGI_SERVER = "in-process"
ASGI_SERVERS_ROOT = ("in-process uvicorn-style", "in-process hypercorn-style")


def servers(family: str, mount: str) -> tuple[str, ...]:
    if family == "asgi" and mount == "root":
        return ASGI_SERVERS_ROOT
    return (WSGI_SERVER,)


def _split_target(target: str) -> tuple[str, str]:
    """gunicorn's split of a request target (``//x`` is a path, not an authority)."""
    if target.startswith("//"):
        parts = urlsplit("." + target)
        return parts.path[1:], parts.query
    parts = urlsplit(target)
    return parts.path, parts.query


def wsgi_environ(
    method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes, *, script_name: str
) -> dict[str, Any] | None:
    """gunicorn's environ for this request (``None``: gunicorn answers 500 itself)."""
    path, query = _split_target(target)
    if script_name:
        if not path.startswith(script_name):
            return None
        path = path[len(script_name) :]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": target,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    return environ


def call_wsgi(app: Any, environ: dict[str, Any] | None) -> Answer:
    if environ is None:
        return Answer(500)
    response = call_wsgi_app(app, environ)
    return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.body)


def asgi_scope(
    method: str, target: str, headers: Sequence[tuple[str, str]], *, root_path: str, server: str
) -> dict[str, Any]:
    raw_path, _, query = target.encode("latin-1").partition(b"?")
    path = unquote(raw_path.decode("ascii"))
    if server == "in-process uvicorn-style" and root_path:
        path, raw_path = root_path + path, root_path.encode() + raw_path
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def call_asgi(app: Any, scope: dict[str, Any], body: bytes) -> Answer:
    sent: list[dict[str, Any]] = []
    delivered = False
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # a real server blocks until the client goes away
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    done.set()
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        return Answer(None)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], headers, data)


def run_family(family: str, mount: str, app: Any) -> list[Row]:
    """Every configuration of ``family`` under ``mount`` through ``app`` (the dispatcher)."""
    rows: list[Row] = []
    for server in servers(family, mount):
        for config in CONFIGS:
            if config.family != family:
                continue
            results = _run_config(config, mount, server, app)
            rows.append(tally(config, mount, server, results))
    return rows


def _run_config(config: Config, mount: str, server: str, app: Any) -> list[tuple[Probe, Answer]]:
    return _send(config, mount, server, app, probes(config, mount, server))


def _send(
    config: Config, mount: str, server: str, app: Any, probes: Sequence[Probe]
) -> list[tuple[Probe, Answer]]:
    root = ROOT if mount == "root" else ""
    requests = []
    for probe in probes:
        headers, body = request_parts(config, probe, mount, server)
        requests.append((probe, headers, body))
    if config.family == "wsgi":
        return [
            (p, call_wsgi(app, wsgi_environ(p.method, p.target, h, b, script_name=root)))
            for p, h, b in requests
        ]

    async def all_of_them() -> list[tuple[Probe, Answer]]:
        out = []
        for p, h, b in requests:
            scope = asgi_scope(p.method, p.target, h, root_path=root, server=server)
            out.append((p, await call_asgi(app, scope, b)))
        return out

    return asyncio.run(all_of_them())


#: Segments random targets are built from: the protected paths' own words and every trick above.
ATOMS = (
    "webhook", "webhook", "WebHook", "%77ebhook", "webho%6fk", "%2577ebhook", "in", "github", "bp",
    "hooks", "v1", "api", "intl", "fr", "de", "inner", "other", "x", "", "", ".", "..", "%2e",
    "%2E%2e", ".%2e", "%2f", "%2F", "%252F", "%5C", "\\", ";", ";x=1", "webhook;v", "webhook.",
    "webhook%2e", "%00", "%20", "%0a", "%09", "%C0%AF", "%EF%BC%8F", "*", "%3B", "?", "#", "%3F",
)  # fmt: skip


def random_targets(count: int, seed: int, prefix: str) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        target = "/" + "/".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 6)))
        target += "/" if rng.random() < 0.2 else ""
        out.append(("/" if rng.random() < 0.1 else "") + (prefix if rng.random() < 0.8 else "") + target)
    return out


def fuzz(family: str, mount: str, app: Any, count: int, seed: int) -> tuple[int, list[str]]:
    """``count`` random unsigned targets per configuration: how many were sent, and which reached."""
    sent, reached = 0, []
    for server in servers(family, mount):
        for config in CONFIGS:
            if config.family != family:
                continue
            prefix = request_prefix(config, mount, server)
            requests = [Probe(config.key, "spelling", "random", t, "refused")
                        for t in random_targets(count, seed, prefix)]  # fmt: skip
            for probe, answer in _send(config, mount, server, app, requests):
                sent += 1
                if answer.outcome() == "reached":
                    reached.append(f"{config.key} {mount} {server}: {probe.target!r}")
    return sent, reached


def run_all(fuzz_count: int = 0, seed: int = 0) -> dict[str, Any]:
    from .apps import build

    rows: list[Row] = []
    sent, reached = 0, []
    for mount in MOUNTS:
        for family in ("wsgi", "asgi"):
            app = build(family, mount)
            rows += run_family(family, mount, app)
            if fuzz_count:
                n, hits = fuzz(family, mount, app, fuzz_count, seed)
                sent, reached = sent + n, reached + hits
    return {"rows": [row.to_dict() for row in rows], "fuzz": {"sent": sent, "reached": reached}}


if __name__ == "__main__":
    count, seed = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else ("0", "0")))
    json.dump(run_all(count, seed), sys.stdout)
