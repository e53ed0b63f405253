"""Replay protection and rate limits shared through a real redis-server, under real gunicorn.

Two gunicorn workers, then two gunicorn servers, all on one Redis: a delivery accepted by one is a
replay (409) at every other, and one client's budget is spent wherever it sends. Then Redis is
stopped mid-run: fail-closed servers answer 503, a fail-open server answers 200 and logs a warning,
no worker dies, and everything recovers when Redis comes back.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from hmacguard import Signer

from ._servers import RedisServer, Server, gunicorn, need_redis_server, redis_server, uvicorn

pytestmark = [pytest.mark.slow, pytest.mark.redis]
APP = "tests.guard._apps.redis_guarded:application"
SECRET = "whsec_cmVkaXMtdGVzdC1zZWNyZXQ="  # the same as _apps/redis_guarded.py
signer = Signer("standard-webhooks", secrets=SECRET)
counter = itertools.count()


def delivery(client_id: str = "default") -> tuple[bytes, dict[str, str]]:
    body = b'{"n": %d}' % next(counter)
    headers = signer.sign(body, message_id=f"msg_{uuid.uuid4().hex}")
    headers["X-Test-Client"] = client_id
    return body, headers


def post(server: Server, body: bytes, headers: dict[str, str], hold: float = 0.0) -> httpx.Response:
    extra = {"X-Test-Hold": str(hold)} if hold else {}
    return httpx.post(server.base_url + "/webhook", content=body, headers={**headers, **extra}, timeout=20)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    need_redis_server()
    with redis_server() as server:
        yield server


def test_replay_refused_across_two_gunicorn_workers(redis: RedisServer) -> None:
    with gunicorn(APP, {"HMACGUARD_TEST_REDIS": redis.url}) as server, ThreadPoolExecutor(4) as pool:
        assert len(server.worker_pids()) == 2
        cross_worker = 0
        previous: tuple[bytes, dict[str, str], str] | None = None
        for _ in range(12):
            body, headers = delivery()
            # A slow legitimate delivery occupies one worker while the replay of the previous one
            # arrives: the replay is answered by the other worker.
            fresh = pool.submit(post, server, body, headers, 0.2)
            if previous is not None:
                old_body, old_headers, old_pid = previous
                replay = pool.submit(post, server, old_body, old_headers).result()
                assert replay.status_code == 409, replay.text
                assert replay.headers["content-type"] == "application/problem+json"
                cross_worker += replay.headers["x-worker-pid"] != old_pid
            first = fresh.result()
            assert first.status_code == 200, first.text
            previous = (body, headers, first.headers["x-worker-pid"])
        assert cross_worker >= 1, "no replay ever reached the other worker"


def test_replay_and_rate_limit_hold_across_two_gunicorn_servers(redis: RedisServer) -> None:
    env = {"HMACGUARD_TEST_REDIS": redis.url, "HMACGUARD_TEST_RATE": "5/hour"}
    with gunicorn(APP, env) as a, gunicorn(APP, env) as b:
        body, headers = delivery()
        assert post(a, body, headers).status_code == 200
        assert post(b, body, headers).status_code == 409
        assert post(a, body, headers).status_code == 409
        # One client, ten fresh deliveries alternating between the servers: five pass in total.
        client = f"client-{uuid.uuid4().hex}"
        statuses = [post(server, *delivery(client)).status_code for server in [a, b] * 5]
        assert statuses.count(200) == 5
        assert statuses.count(429) == 5
        limited = post(b, *delivery(client))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["ratelimit-policy"] == '"requests";q=5;w=3600'
        # Another client still has its whole budget, on either server.
        assert post(b, *delivery(f"client-{uuid.uuid4().hex}")).status_code == 200


def test_redis_stopped_mid_run_fails_closed_or_open_and_recovers() -> None:
    need_redis_server()
    with redis_server() as redis:
        port = redis.port
        url = redis.url
        closed_env = {"HMACGUARD_TEST_REDIS": url}
        open_env = {"HMACGUARD_TEST_REDIS": url, "HMACGUARD_TEST_FAIL_OPEN": "1"}
        with gunicorn(APP, closed_env) as closed, gunicorn(APP, open_env) as fail_open:
            assert post(closed, *delivery()).status_code == 200
            assert post(fail_open, *delivery()).status_code == 200
            workers = closed.worker_pids() | fail_open.worker_pids()

            redis.process.terminate()
            redis.process.wait(timeout=10)
            for _ in range(4):
                refused = post(closed, *delivery())
                assert refused.status_code == 503, refused.text
                assert refused.json()["type"] == "urn:hmacguard:problem:store-unavailable"
                assert "redis" not in refused.text.lower()
                assert post(fail_open, *delivery()).status_code == 200
            assert "store unavailable, passing" in fail_open.log()
            assert "store unavailable, answering 503" in closed.log()
            assert "passing" not in closed.log()
            # Nothing crashed: the same workers are still serving.
            assert closed.worker_pids() | fail_open.worker_pids() == workers

            with redis_server(port):
                # Each worker's circuit breaker keeps the store uncalled for its window (5 s) after
                # its last failure; until then fail-closed answers 503 at once, then each worker
                # recovers by itself. Recovered: a 200 from every worker (by the pid it names; four
                # 200s in a row could all come from one worker while the other's window still ran).
                statuses = []
                recovered: set[int] = set()
                pids = closed.worker_pids()
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not recovered >= pids:
                    answer = post(closed, *delivery())
                    statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        recovered.add(int(answer.headers["X-Worker-Pid"]))
                    time.sleep(0.1)
                assert recovered >= pids and set(statuses) <= {200, 503}, (statuses, recovered, pids)
                body, headers = delivery()
                assert post(closed, body, headers).status_code == 200
                # Fail-open passes while its own breaker is open; once it closes, replays are refused.
                statuses = []
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    statuses.append(post(fail_open, body, headers).status_code)
                    if statuses[-1] == 409:
                        break
                    time.sleep(0.25)
                assert statuses[-1] == 409 and set(statuses[:-1]) <= {200}, statuses
            assert "Traceback" not in closed.log() + fail_open.log()


def test_wsgi_and_asgi_servers_share_one_redis(redis: RedisServer) -> None:
    env = {"HMACGUARD_TEST_REDIS": redis.url, "HMACGUARD_TEST_RATE": "3/hour"}
    with gunicorn(APP, env) as wsgi, uvicorn("tests.guard._apps.redis_guarded:asgi", env) as asgi:
        body, headers = delivery()
        assert post(wsgi, body, headers).status_code == 200
        assert post(asgi, body, headers).status_code == 409
        client = f"client-{uuid.uuid4().hex}"
        statuses = [post(server, *delivery(client)).status_code for server in [asgi, wsgi] * 3]
        assert statuses == [200, 200, 200, 429, 429, 429]


def test_asgi_server_fails_closed_when_redis_stops() -> None:
    need_redis_server()
    with redis_server() as redis:
        env = {"HMACGUARD_TEST_REDIS": redis.url}
        with uvicorn("tests.guard._apps.redis_guarded:asgi", env) as asgi:
            assert post(asgi, *delivery()).status_code == 200
            redis.process.terminate()
            redis.process.wait(timeout=10)
            refused = post(asgi, *delivery())
            assert refused.status_code == 503
            assert refused.json()["status"] == 503
            assert asgi.process.poll() is None
