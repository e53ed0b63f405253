"""Start commands in Dockerfile, Procfile, compose files and scripts: which server, which cap."""

from __future__ import annotations

from pathlib import PurePath

import pytest

from hmacguard.audit.config.deployment import (
    MOD_WSGI_DEFAULT_LIMIT,
    is_deployment_file,
    parse_deployment,
)
from hmacguard.audit.model import SourceFile


def servers(name: str, text: str) -> list[tuple[str, str, int | None]]:
    parsed = parse_deployment(SourceFile(name, text))
    return [(s.server, s.interface, s.body_limit) for s in parsed.servers]


@pytest.mark.parametrize(
    ("name", "deployment"),
    [
        ("Dockerfile", True),
        ("Dockerfile.prod", True),
        ("api.dockerfile", True),
        ("Procfile", True),
        ("docker-compose.yml", True),
        ("compose.prod.yaml", True),
        ("start.sh", True),
        ("settings.py", False),
        ("nginx.conf", False),
    ],
)
def test_which_files_are_read(name: str, deployment: bool) -> None:
    assert is_deployment_file(PurePath(name)) is deployment


def test_wsgi_and_asgi_servers() -> None:
    text = "\n".join(
        [
            'CMD ["gunicorn", "--bind", "0.0.0.0:8000", "mysite.wsgi:application"]',
            "web: gunicorn -k uvicorn.workers.UvicornWorker app.main:app",
            "    command: uvicorn app.main:app --host 0.0.0.0",
            "exec daphne mysite.asgi:application",
            "granian --interface asgi app:app",
            "waitress-serve --port=8080 app:app",
            "RUN pip install gunicorn uvicorn",
            "# gunicorn mysite.wsgi (a comment)",
        ]
    )
    assert servers("Dockerfile", text) == [
        ("gunicorn", "wsgi", None),
        ("gunicorn", "asgi", None),
        ("uvicorn", "asgi", None),
        ("daphne", "asgi", None),
        ("granian", "asgi", None),
        ("waitress-serve", "wsgi", None),
    ]


def test_server_caps() -> None:
    assert servers("start.sh", "mod_wsgi-express start-server app.wsgi --limit-request-body 1048576") == [
        ("mod_wsgi-express", "wsgi", 1048576)
    ]
    assert servers("start.sh", "mod_wsgi-express start-server app.wsgi") == [
        ("mod_wsgi-express", "wsgi", MOD_WSGI_DEFAULT_LIMIT)
    ]
    assert servers("run.sh", "uwsgi --http :8000 --module app:app --limit-post 2m") == [
        ("uwsgi", "wsgi", 2 * 1024 * 1024)
    ]
