"""Fixtures the guard's real-server tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def multiprocess_dir(tmp_path: Path) -> str:
    """A fresh PROMETHEUS_MULTIPROC_DIR for one gunicorn server's workers."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    return str(directory)
