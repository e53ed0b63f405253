"""What the tests of a Redis Cluster with a dead primary share: tests/guard/_apps/redis_guarded.py
served on a Cluster, its signer, and where a delivery's replay key lives."""

from __future__ import annotations

import itertools

from hmacguard import Signer

APP = "tests.guard._apps.redis_guarded:application"
ASGI_APP = "tests.guard._apps.redis_guarded:asgi"
SECRET = "whsec_cmVkaXMtdGVzdC1zZWNyZXQ="  # the same as _apps/redis_guarded.py
RATE = "100000/hour"
DEAD = 2  # the index of the primary killed
signer = Signer("standard-webhooks", secrets=SECRET)
counter = itertools.count()


def replay_key(message_id: str) -> str:
    return f"hmacguard:replay:standard-webhooks:id:{message_id}"
