"""hmacguard's installed version, as every report names it."""

from __future__ import annotations

__all__ = ["tool_version"]


def tool_version() -> str:
    """hmacguard's installed version (``0+unknown`` when run from a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hmacguard")
    except PackageNotFoundError:
        return "0+unknown"
