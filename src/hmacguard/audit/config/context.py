"""What configuration rules receive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hmacguard.audit.config.nginx import NginxFile
from hmacguard.audit.config.requirements import RequirementsFile
from hmacguard.audit.python.facts import PythonFacts

__all__ = ["ASGI_SERVERS", "NginxContext", "RequirementsContext"]

#: Packages whose presence means the project serves ASGI.
ASGI_SERVERS = ("uvicorn", "daphne", "hypercorn", "granian", "channels")


@dataclass
class NginxContext:
    file: NginxFile


@dataclass
class RequirementsContext:
    file: RequirementsFile
    facts: PythonFacts
    requirements: Sequence[RequirementsFile]

    def asgi_evidence(self) -> list[str]:
        """Why the audit believes the project runs under ASGI (empty when it has no reason).

        When the repository states how the app is started (Dockerfile, Procfile, compose files,
        start scripts), that decides: ASGI only if one of those commands runs an ASGI server.
        ``startproject`` writes an ``asgi.py`` into every project, served or not.
        """
        servers = self.facts.servers
        if servers:
            return [
                f"{s.server} in a start command (line {s.line})" for s in servers if s.interface == "asgi"
            ]
        found = [f"{s.what} ({s.path}:{s.line})" for s in self.facts.asgi]
        for req in self.requirements:
            for server in ASGI_SERVERS:
                for pin in req.find(server):
                    found.append(f"{server} pinned in {req.source.path}:{pin.line}")
                if server in req.source.text.lower() and not req.find(server):
                    found.append(f"{server} listed in {req.source.path}")
        return found
