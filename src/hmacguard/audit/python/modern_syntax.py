"""Python syntax newer than the running interpreter, read anyway.

The rules work on the standard library's ``ast``, which only parses the syntax of the interpreter
it runs in. A project written for Python 3.12-3.14 uses syntax 3.10 and 3.11 reject: ``type``
statements and type parameters (PEP 695, PEP 696), f-strings that reuse their own quote inside a
replacement field (PEP 701), ``except A, B:`` without parentheses (PEP 758). Skipping such a file
would hide exactly the module that verifies the webhook.

So when ``ast.parse`` refuses a file, libcst (a parser for Python 3.0-3.15 syntax that does not
depend on the running interpreter) reads it, and the few newer constructs are rewritten into
equivalent older syntax *on the same lines*: ``type X = Y`` becomes ``X = Y``, type parameters
are dropped (they carry no data flow), ``except A, B:`` gains its parentheses, and a string nested
in an f-string's replacement field switches to the other quote character. The result is parsed by
``ast`` as usual; line numbers are unchanged, columns on a rewritten line may shift by a few
characters. A file neither parser accepts is a real syntax error (see the engine's diagnostics).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModernSyntaxError", "downgrade"]


class ModernSyntaxError(ValueError):
    """libcst could not read the file either (or it is not installed)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def downgrade(text: str) -> str:
    """``text`` rewritten into syntax Python 3.10 parses, line for line."""
    try:
        import libcst as cst
    except ImportError as exc:  # pragma: no cover - libcst is a dependency of the CLI
        raise ModernSyntaxError("needs libcst to read syntax newer than this Python", None) from exc
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        raise ModernSyntaxError(f"syntax error: {exc.message}", exc.raw_line) from exc
    except RecursionError as exc:
        raise ModernSyntaxError("nested too deeply to parse", None) from exc
    rewritten = module.visit(_Downgrade())
    code: str = rewritten.code
    return code


def _make_transformer() -> Any:
    import libcst as cst

    class Downgrade(cst.CSTTransformer):  # type: ignore[misc]
        """The rewrites described in the module docstring."""

        def leave_TypeAlias(self, original: Any, updated: Any) -> Any:
            return cst.Assign(
                targets=[cst.AssignTarget(target=updated.name)],
                value=updated.value,
                semicolon=updated.semicolon,
            )

        def leave_FunctionDef(self, original: Any, updated: Any) -> Any:
            if updated.type_parameters is None:
                return updated
            return updated.with_changes(type_parameters=None)

        def leave_ClassDef(self, original: Any, updated: Any) -> Any:
            if updated.type_parameters is None:
                return updated
            return updated.with_changes(type_parameters=None)

        def leave_ExceptHandler(self, original: Any, updated: Any) -> Any:
            kind = updated.type
            if isinstance(kind, cst.Tuple) and not kind.lpar:
                return updated.with_changes(
                    type=kind.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                )
            return updated

        def leave_ExceptStarHandler(self, original: Any, updated: Any) -> Any:
            kind = updated.type
            if isinstance(kind, cst.Tuple) and not kind.lpar:
                return updated.with_changes(
                    type=kind.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                )
            return updated

        def leave_FormattedString(self, original: Any, updated: Any) -> Any:
            quote = updated.quote  # ' " ''' or """
            if len(quote) == 3:
                return updated  # a triple-quoted f-string already allowed nested quotes
            other = '"' if quote == "'" else "'"
            return updated.with_changes(parts=[_requote(part, quote, other) for part in updated.parts])

    def _requote(part: Any, quote: str, other: str) -> Any:
        if not isinstance(part, cst.FormattedStringExpression):
            return part
        return part.with_changes(expression=part.expression.visit(_Requote(quote, other)))

    class _Requote(cst.CSTTransformer):  # type: ignore[misc]
        """Inside one replacement field: strings quoted like the enclosing f-string swap quotes."""

        def __init__(self, quote: str, other: str) -> None:
            super().__init__()
            self.quote = quote
            self.other = other

        def leave_SimpleString(self, original: Any, updated: Any) -> Any:
            value: str = updated.value
            prefix_len = len(value) - len(value.lstrip("rRbBuU"))
            prefix, body = value[:prefix_len], value[prefix_len:]
            if body.startswith(self.quote * 3) or not body.startswith(self.quote):
                return updated
            inner = body[1:-1]
            if self.other in inner:
                return updated
            return updated.with_changes(value=f"{prefix}{self.other}{inner}{self.other}")

        def leave_FormattedString(self, original: Any, updated: Any) -> Any:
            # A nested f-string may itself hold strings in the other quote: triple-quoting it
            # in the other character leaves both kinds free inside it.
            if updated.end == self.quote:
                start = updated.start[: -len(self.quote)] + self.other * 3
                return updated.with_changes(start=start, end=self.other * 3)
            return updated

    return Downgrade()


class _Lazy:
    """Builds the transformer on first use (libcst is imported only when a file needs it)."""

    _instance: Any = None

    def __call__(self) -> Any:
        if _Lazy._instance is None:
            _Lazy._instance = _make_transformer()
        return _Lazy._instance


_Downgrade = _Lazy()
