"""Shared test fixtures. Real servers only ever bind 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hatch_build import SRC, extensions

from hmacguard.lab.targets import NODE_APPS


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled guard older than its sources: Python would import the stale
    extension, not the edited ``.py`` (hatch_build.py; ``make pytest`` rebuilds it first)."""
    built = extensions(SRC)
    if not built:
        return  # the pure-Python guard
    newest: Path = max(
        (path for path in (SRC / "hmacguard").rglob("*.py") if "node_modules" not in path.parts),
        key=lambda path: path.stat().st_mtime,
    )
    if newest.stat().st_mtime > min(path.stat().st_mtime for path in built):
        pytest.exit(
            f"the compiled guard is older than {newest.relative_to(SRC.parent)}: "
            "`make compiled` rebuilds it, `make pure` removes it",
            returncode=2,
        )


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
