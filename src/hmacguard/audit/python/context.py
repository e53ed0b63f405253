"""What a Python rule receives: the parsed file, the project's facts, and cached data flows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from hmacguard.audit.python.facts import SINK_PATTERN, PythonFacts
from hmacguard.audit.python.flow import Flow
from hmacguard.audit.python.frontend import FunctionScope, PyFile

__all__ = ["PyContext"]

_SINK = re.compile(SINK_PATTERN)


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

    def scopes(
        self,
        *words: str,
        pattern: re.Pattern[str] | None = None,
        functions_only: bool = False,
    ) -> Iterator[FunctionScope]:
        """Scopes whose text mentions one of ``words`` or matches ``pattern`` (all if neither)."""
        for scope in self.file.scopes:
            if functions_only and scope.parent is None:
                continue
            if words or pattern is not None:
                text = self.file.scope_text(scope)
                if not (
                    any(w in text for w in words)
                    or (pattern is not None and pattern.search(text) is not None)
                ):
                    continue
            yield scope

    def sink_scopes(self) -> Iterator[FunctionScope]:
        """Scopes that hash, verify, or call a project function that does."""
        names = self.facts.hashing_function_names()
        words = tuple(f"{n}(" for n in names)
        return self.scopes(*words, pattern=_SINK)
