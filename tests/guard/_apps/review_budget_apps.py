"""The budget's review serves :mod:`tests.guard._apps.budget_guarded`'s apps with a smaller budget
and a short body timeout (its real-server attacks time uploads out): ``wsgi`` and ``asgi``."""

from __future__ import annotations

from tests.guard._apps.budget_guarded import build

SECRET = "review-budget-secret"
BUDGET = 1024 * 1024
TIMEOUT = 1.5

budget, wsgi, asgi = build(SECRET, BUDGET, body_timeout=TIMEOUT)
