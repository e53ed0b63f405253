"""Shared test fixtures. Real servers only ever bind 127.0.0.1."""

from __future__ import annotations

import shutil

import pytest

from hmacguard.lab.targets import NODE_APPS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip Node targets with a clear reason on a machine without node or the lab's npm packages."""
    reason = None
    if shutil.which("node") is None:
        reason = "node is not installed (Node.js 20 is needed for the Express lab targets)"
    elif not (NODE_APPS / "node_modules" / "express").is_dir():
        reason = f"the lab's npm packages are missing: npm ci --prefix {NODE_APPS}"
    if reason is None:
        return
    for item in items:
        if "express" in item.nodeid:
            item.add_marker(pytest.mark.skip(reason=reason))
