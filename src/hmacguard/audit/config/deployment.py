"""The deployment front end: which server the repository says runs the app, and its body cap.

Whether Django runs under WSGI or ASGI, and whether a server in front caps request bodies, is
stated in the files that start the app, not in the app: ``Dockerfile`` (``CMD``/``ENTRYPOINT``/
``RUN``), ``Procfile``, compose files (``command:``), and start scripts (``*.sh``). This module
reads the server commands in them:

- WSGI servers: ``gunicorn`` (unless run with an ASGI worker class such as
  ``uvicorn.workers.UvicornWorker``), ``waitress-serve``, ``uwsgi``, ``mod_wsgi-express``.
- ASGI servers: ``uvicorn``, ``daphne``, ``hypercorn``, ``granian --interface asgi``, and gunicorn
  with an ASGI worker.
- Body caps the server enforces: ``mod_wsgi-express``'s ``--limit-request-body`` (10 MB when not
  given: mod_wsgi-express sets Apache's LimitRequestBody to 10485760 by default), and uWSGI's
  ``--limit-post``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

from hmacguard.audit.model import SourceFile

__all__ = ["DeploymentFile", "ServerCommand", "is_deployment_file", "parse_deployment"]

Interface = Literal["wsgi", "asgi"]
#: mod_wsgi-express's default ``--limit-request-body`` (bytes).
MOD_WSGI_DEFAULT_LIMIT = 10 * 1024 * 1024

_ASGI_SERVERS = frozenset({"uvicorn", "daphne", "hypercorn"})
_WSGI_SERVERS = frozenset({"gunicorn", "waitress-serve", "uwsgi", "mod_wsgi-express"})
_SERVER_WORD = re.compile(
    r"\b(gunicorn|uvicorn|daphne|hypercorn|granian|waitress-serve|uwsgi|mod_wsgi-express)\b"
)
_ASGI_WORKER = re.compile(r"uvicorn\.workers|UvicornWorker|UvicornH11Worker|asgi", re.IGNORECASE)
_COMPOSE = re.compile(r"^(docker-)?compose[\w.-]*\.ya?ml$")


@dataclass(frozen=True)
class ServerCommand:
    """One server start in a deployment file."""

    server: str
    interface: Interface
    line: int
    #: The module the server loads (``mysite.wsgi:application``, ``app.main:app``), when given.
    target: str
    #: The body cap the server enforces, in bytes (None: none known).
    body_limit: int | None = None


@dataclass(frozen=True)
class DeploymentFile:
    source: SourceFile
    servers: tuple[ServerCommand, ...]


def is_deployment_file(path: PurePath) -> bool:
    name = path.name
    lower = name.lower()
    return (
        lower == "dockerfile"
        or lower.startswith("dockerfile.")
        or lower.endswith(".dockerfile")
        or name == "Procfile"
        or bool(_COMPOSE.match(lower))
        or lower.endswith(".sh")
    )


def _size(text: str) -> int | None:
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", text.strip("'\""))
    if m is None:
        return None
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    return int(m.group(1)) * scale


def _option(words: list[str], *names: str) -> str | None:
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def _target(words: list[str]) -> str:
    """The first argument that looks like ``module:app`` or ``package.wsgi``/``.asgi``."""
    for word in words[1:]:
        cleaned = word.strip("'\"[],")
        if re.fullmatch(r"[\w.]+:[\w.()]+", cleaned) or re.search(r"\.(wsgi|asgi)$", cleaned):
            return cleaned
        if cleaned.endswith(".wsgi") or cleaned.endswith("wsgi.py"):
            return cleaned
    return ""


def _command(line: str, number: int) -> ServerCommand | None:
    m = _SERVER_WORD.search(line)
    if m is None:
        return None
    rest = line[m.start() :]
    # Exec-form JSON arrays (CMD ["gunicorn", "-b", ...]) and shell form both become words.
    rest = rest.replace('", "', " ").replace('","', " ").rstrip("]").strip()
    try:
        words = shlex.split(rest, comments=True)
    except ValueError:
        words = rest.split()
    words = [w.strip("'\",[]") for w in words]
    server = m.group(1)
    target = _target(words)
    if server in _ASGI_SERVERS:
        return ServerCommand(server, "asgi", number, target)
    if server == "granian":
        interface = _option(words, "--interface") or "rsgi"
        return ServerCommand(server, "asgi" if interface == "asgi" else "wsgi", number, target)
    if server == "gunicorn":
        worker = _option(words, "-k", "--worker-class") or ""
        asgi = bool(_ASGI_WORKER.search(worker)) or target.endswith(".asgi") or ".asgi:" in target
        return ServerCommand(server, "asgi" if asgi else "wsgi", number, target)
    if server == "mod_wsgi-express":
        limit = _option(words, "--limit-request-body")
        size = _size(limit) if limit is not None else MOD_WSGI_DEFAULT_LIMIT
        return ServerCommand(server, "wsgi", number, target, size)
    if server == "uwsgi":
        limit = _option(words, "--limit-post")
        return ServerCommand(server, "wsgi", number, target, _size(limit) if limit else None)
    if server in _WSGI_SERVERS:
        return ServerCommand(server, "wsgi", number, target)
    return None


def parse_deployment(source: SourceFile) -> DeploymentFile:
    """Every server command in ``source`` (comments and ``pip install`` lines ignored)."""
    servers: list[ServerCommand] = []
    for number, line in enumerate(source.lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if re.search(r"\b(pip3?|poetry|uv|pipenv|apt-get|apk)\b.*\b(install|add)\b", stripped):
            continue  # installing a server is not running it
        command = _command(stripped, number)
        if command is not None:
            servers.append(command)
    return DeploymentFile(source, tuple(servers))
