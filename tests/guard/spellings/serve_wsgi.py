"""gunicorn / hypercorn entry point: every WSGI configuration under ``$MATRIX_MOUNT``."""

from __future__ import annotations

import os

from .apps import build

app = build("wsgi", os.environ.get("MATRIX_MOUNT", "plain"))
