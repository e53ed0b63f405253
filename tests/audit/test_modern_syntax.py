"""Python newer than the interpreter is audited; a file nothing can parse makes the run incomplete."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from hmacguard.audit import DiagnosticKind, audit
from hmacguard.audit.python.modern_syntax import ModernSyntaxError, downgrade

VIEW = """\
import hashlib
import hmac

from flask import Flask, request

app = Flask(__name__)
{extra}

@app.post("/hook")
def hook():
    body = request.get_data()
    try:
        digest = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    {handler}
        return "bad", 400
    return {{"sig": digest, "who": {fstring}}}
"""

NEWER = {
    "pep695-type": ("type Payload = dict[str, object]", "except ValueError:", "1"),
    "pep695-generic": ("def first[T](items: list[T]) -> T:\n    return items[0]", "except ValueError:", "1"),
    "pep701": ("", "except ValueError:", 'f"{request.headers["X-Who"]}"'),
    "pep758": ("", "except ValueError, TypeError:", "1"),
}


@pytest.mark.parametrize("case", sorted(NEWER))
def test_newer_syntax_is_analysed_not_skipped(tmp_path: Path, case: str) -> None:
    extra, handler, fstring = NEWER[case]
    text = VIEW.format(extra=extra, handler=handler, fstring=fstring)
    with pytest.raises(SyntaxError):
        ast.parse(text)  # the point: this interpreter cannot read it (3.10/3.11)
    (tmp_path / "app.py").write_text(text, encoding="utf-8")
    result = audit([tmp_path])
    assert result.diagnostics == ()
    assert not result.incomplete
    reads = [f for f in result.findings if f.rule == "py-unbounded-body-hmac"]
    assert [f.location.line for f in reads] == [text.splitlines().index("    body = request.get_data()") + 1]


def test_downgrade_keeps_lines_and_meaning() -> None:
    text = textwrap.dedent(
        """\
        type Alias = int
        class Box[T: int = int]:
            pass
        x = f"{d["a"]} {f"{d["b"]}"}"
        """
    )
    older = downgrade(text)
    assert len(older.splitlines()) == len(text.splitlines())
    tree = ast.parse(older)
    assert isinstance(tree.body[0], ast.Assign)
    env = {"d": {"a": 1, "b": 2}}
    exec(compile(ast.Module([tree.body[2]], []), "<x>", "exec"), env)
    assert env["x"] == "1 2"


def test_a_real_syntax_error_makes_the_result_incomplete(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "import hmac\ndef hook(:\n    hmac.new(b'k', request.get_data())\n", encoding="utf-8"
    )
    (tmp_path / "fine.py").write_text("import hmac\n", encoding="utf-8")
    result = audit([tmp_path])
    assert result.findings == ()
    assert result.incomplete
    assert [d.kind for d in result.diagnostics] == [DiagnosticKind.PARSE_ERROR]
    assert result.summary()["incomplete"] is True
    assert result.summary()["unaudited_files"] == 1
    with pytest.raises(ModernSyntaxError):
        downgrade("def hook(:\n")


def test_a_suppression_without_a_rule_does_not_make_it_incomplete(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "import hmac\nx = hmac.new(b'k', request.get_data())  # hmacguard: ignore\n", encoding="utf-8"
    )
    result = audit([tmp_path])
    assert result.diagnostics and not result.incomplete
