"""``mypyc_attr`` for the modules ``hatch_build.py`` compiles, without a dependency at run time.

mypyc reads the decorator from the source (``mypy_extensions.mypyc_attr``, seen by the type checker
through the import below); at run time, compiled or not, it is a decorator that changes nothing, so
``import hmacguard`` needs no ``mypy_extensions``. A class users or tests subclass is marked
``allow_interpreted_subclasses=True``; one that needs weak references, ``native_class=False``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:

    def mypyc_attr(*_args: Any, **_kwargs: Any) -> Any:
        return lambda cls: cls


__all__ = ["mypyc_attr"]
