"""Rule docstrings (reStructuredText, as Python docstrings are written) as plain text or Markdown.

Only what rule docstrings use is understood: ``literal``, :role:`target` cross-references, a paragraph
ending in ``::`` and ``.. code-block:: lang`` directives followed by an indented block. Everything else
passes through unchanged (``**bold**`` reads the same in Markdown and is left as emphasis in text).
"""

from __future__ import annotations

import re

__all__ = ["rest_to_markdown", "rest_to_text"]

_LITERAL = re.compile(r"``(.+?)``")
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_DIRECTIVE = re.compile(r"^\.\. code-block::\s*(\S*)\s*$")


def _blocks(doc: str) -> list[tuple[str, str, list[str]]]:
    """``("text", "", lines)`` and ``("code", language, lines)`` pieces, in order."""
    out: list[tuple[str, str, list[str]]] = []
    lines = doc.splitlines()
    i = 0
    text: list[str] = []
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line.strip())
        literal = line.rstrip().endswith("::") and not directive
        if directive or literal:
            if literal:
                text.append(line.rstrip()[:-1] if not line.rstrip().endswith(" ::") else line.rstrip()[:-3])
            out.append(("text", "", text))
            text = []
            i += 1
            code: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                code.append(lines[i])
                i += 1
            while code and not code[-1].strip():
                code.pop()
            body = [c for c in code if c.strip()]
            indent = min((len(c) - len(c.lstrip()) for c in body), default=0)
            out.append(("code", directive.group(1) if directive else "", [c[indent:] for c in code]))
            # Keep the blank line that followed the block.
            if i < len(lines):
                text.append("")
            continue
        text.append(line)
        i += 1
    out.append(("text", "", text))
    return out


def _inline(text: str, literal: str) -> str:
    text = _ROLE.sub(lambda m: literal.format(m.group(1)), text)
    return _LITERAL.sub(lambda m: literal.format(m.group(1)), text)


def _trimmed(out: list[str]) -> list[str]:
    while out and not out[-1].strip():
        out.pop()
    return out


def _clean(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    return lines


def rest_to_text(doc: str) -> str:
    """For a terminal: literals unquoted, code blocks indented by four spaces."""
    out: list[str] = []
    for kind, _, lines in _blocks(doc):
        if kind == "code":
            out = [*_trimmed(out), "", *(f"    {c}" if c.strip() else "" for c in _clean(lines))]
        else:
            out += [_inline(line, "{}") for line in lines]
    return "\n".join(out).strip() + "\n"


def rest_to_markdown(doc: str) -> str:
    """For docs/*.md: literals in backticks, code blocks fenced."""
    out: list[str] = []
    for kind, language, lines in _blocks(doc):
        if kind == "code":
            out = [*_trimmed(out), "", f"```{language}", *_clean(lines), "```"]
        else:
            out += [_inline(line, "`{}`") for line in lines]
    return "\n".join(out).strip() + "\n"
