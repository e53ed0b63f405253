"""The lab: the seeds' vulnerable and fixed HMAC endpoints as real services.

>>> from hmacguard.lab import run_target
>>> with run_target("flask-get-data") as t:      # doctest: +SKIP
...     print(t.url, t.scheme, t.secret, t.pid)
"""

from hmacguard.lab.serve import RunningTarget, free_port, run_target
from hmacguard.lab.targets import LAB_SECRET, TARGETS, Memory, Server, Target, get_target

__all__ = [
    "LAB_SECRET",
    "TARGETS",
    "Memory",
    "RunningTarget",
    "Server",
    "Target",
    "free_port",
    "get_target",
    "run_target",
]
