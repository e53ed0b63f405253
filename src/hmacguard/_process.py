"""Stopping a server we started, with every worker it forked (standard library only).

Shared by the lab (``run_target``) and the scanner (``--launch``). Both start servers with
``start_new_session=True``, so the process group id is the started process's id and signalling the
group reaches a gunicorn master and its workers, or node and anything it spawned, by id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

__all__ = ["stop_process_group"]


def stop_process_group(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM the group led by ``process``; SIGKILL whatever is left after ``grace`` seconds.

    Workers can outlive a master that died first, so the group (not only the master) is waited for.
    """
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
