"""What a JavaScript rule receives."""

from __future__ import annotations

from dataclasses import dataclass

from hmacguard.audit.javascript.frontend import JsFile

__all__ = ["JsContext"]


@dataclass
class JsContext:
    file: JsFile
