"""gunicorn settings for prometheus-client's multiprocess mode, as docs/guide.md gives them: a worker
that exits (recycled, timed out, killed) is marked dead, so the ``livesum`` gauges -- the memory
budget's -- drop its file. Loaded with ``GUNICORN_CMD_ARGS="-c <this file>"``."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)
