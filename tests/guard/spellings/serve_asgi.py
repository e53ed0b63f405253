"""uvicorn / hypercorn entry point: every ASGI configuration under ``$MATRIX_MOUNT``."""

from __future__ import annotations

import os

from .apps import build

app = build("asgi", os.environ.get("MATRIX_MOUNT", "plain"))
