"""What a Python rule receives: the parsed file, the project's facts, and cached data flows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from hmacguard.audit.python.facts import PythonFacts
from hmacguard.audit.python.flow import Flow
from hmacguard.audit.python.frontend import FunctionScope, PyFile

__all__ = ["PyContext"]


@dataclass
class PyContext:
    file: PyFile
    facts: PythonFacts
    _flows: dict[int, Flow] = field(default_factory=dict, repr=False)

    def flow(self, scope: FunctionScope) -> Flow:
        """The data flow of ``scope``, computed once and shared by every rule."""
        key = id(scope.node)
        flow = self._flows.get(key)
        if flow is None:
            outer = self.flow(scope.parent).env if scope.parent is not None else None
            flow = Flow(self.file, scope, self.facts, outer)
            self._flows[key] = flow
        return flow

    def scopes(self, *words: str, functions_only: bool = False) -> Iterator[FunctionScope]:
        """Scopes whose text mentions one of ``words`` (all scopes when none are given)."""
        for scope in self.file.scopes:
            if functions_only and scope.parent is None:
                continue
            if words and not any(w in self.file.scope_text(scope) for w in words):
                continue
            yield scope
