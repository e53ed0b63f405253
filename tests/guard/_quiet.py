"""A fixture for tests of bounded memory stores, which warn on purpose when full."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def quiet_store_warnings() -> Iterator[None]:
    """Keep the output readable: the replay store's logger at ERROR for the test (imported by a
    test module, this autouse fixture applies to that module only)."""
    logger = logging.getLogger("hmacguard.guard.replay")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)
