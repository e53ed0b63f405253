"""Under real servers: a FastAPI catch-all exception handler that answers 200 commits the delivery,
so a replay of it is refused (409) and the failing handler runs once -- through ASGIGuard added with
add_middleware and through the dependency, with install(app). Before install() wrapped Starlette's
whole stack, the guard and the settler sat inside ServerErrorMiddleware, where that handler runs: they
saw the endpoint raise and released the delivery the sender had been told was fine.
"""

from __future__ import annotations

import httpx
import pytest

from hmacguard.schemes import sign_body

from ._apps.catch_all_guarded import SECRET
from ._servers import hypercorn, uvicorn

pytestmark = pytest.mark.slow
APP = "tests.guard._apps.catch_all_guarded:app"


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_a_catch_all_200_commits_and_the_replay_is_refused(server: str) -> None:
    running = uvicorn(APP) if server == "uvicorn" else hypercorn(APP, asgi=True)
    with running as http_server:
        # A connection each: Starlette re-raises after the handler's answer, and uvicorn then
        # closes the connection.
        url = http_server.base_url
        for path in ("/webhook", "/dependency"):
            body = f'{{"path": "{path}"}}'.encode()
            headers = sign_body("github", SECRET, body)
            first = httpx.post(url + path, content=body, headers=headers, timeout=10)
            again = httpx.post(url + path, content=body, headers=headers, timeout=10)
            assert (first.status_code, first.text, again.status_code) == (200, "ignored", 409), path
        assert httpx.get(url + "/calls", timeout=10).json() == {"webhook": 1, "dependency": 1}
