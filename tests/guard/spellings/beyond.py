"""Beyond the path spellings: what else an attacker sends to reach a protected view unsigned.

Whole raw requests (the request line, framing and headers bent, not only the path), sent to the
real servers. Each answer is classified as for the matrix; an answer that is neither a view nor the
guard's problem+json is usually the server's own refusal, and the table shows which server refused
what (``server 400``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .matrix import APP_HEADER, Answer


@dataclass(frozen=True)
class Attempt:
    label: str
    method: bytes = b"POST"
    target: bytes = b"/webhook"
    version: bytes = b"HTTP/1.1"
    headers: tuple[tuple[bytes, bytes], ...] = ((b"Content-Length", b"2"),)
    body: bytes = b"{}"
    host: bool = True

    def request(self, app: str, path: str) -> bytes:
        """The raw request for the configuration ``app`` whose protected path is ``path``."""
        target = self.target.replace(b"/webhook", path.encode())
        lines = [b"%s %s %s" % (self.method, target, self.version)]
        if self.host and not any(k.lower() == b"host" for k, _ in self.headers):
            lines.append(b"Host: 127.0.0.1")
        lines.append(b"%s: %s" % (APP_HEADER.encode(), app.encode()))
        lines += [b"%s: %s" % (k, v) for k, v in self.headers]
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


_CL0 = ((b"Content-Length", b"0"),)
ATTEMPTS: tuple[Attempt, ...] = (
    Attempt("method lower case: post", method=b"post"),
    Attempt("method mixed case: PoSt", method=b"PoSt"),
    Attempt("HEAD", method=b"HEAD", headers=_CL0, body=b""),
    Attempt("GET", method=b"GET", headers=_CL0, body=b""),
    Attempt("PUT", method=b"PUT"),
    Attempt("OPTIONS", method=b"OPTIONS", headers=_CL0, body=b""),
    Attempt("unknown method FOO", method=b"FOO"),
    Attempt("X-HTTP-Method-Override: POST on GET", method=b"GET",
            headers=(*_CL0, (b"X-HTTP-Method-Override", b"POST")), body=b""),
    Attempt("chunked, empty body", headers=((b"Transfer-Encoding", b"chunked"),), body=b"0\r\n\r\n"),
    Attempt("chunked and Content-Length", body=b"0\r\n\r\n",
            headers=((b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5"))),
    Attempt("Transfer-Encoding: identity", headers=((b"Transfer-Encoding", b"identity"),), body=b""),
    Attempt("Transfer-Encoding: gzip, chunked", headers=((b"Transfer-Encoding", b"gzip, chunked"),),
            body=b"0\r\n\r\n"),
    Attempt("Transfer-Encoding: xchunked", headers=((b"Transfer-Encoding", b"xchunked"),), body=b""),
    Attempt("Content-Length: 0, no body", headers=_CL0, body=b""),
    Attempt("no Content-Length, no body", headers=(), body=b""),
    Attempt("two Content-Lengths", headers=((b"Content-Length", b"2"), (b"Content-Length", b"2"))),
    Attempt("Content-Length: +2", headers=((b"Content-Length", b"+2"),)),
    Attempt("Expect: 100-continue", headers=((b"Content-Length", b"2"), (b"Expect", b"100-continue"))),
    Attempt("HTTP/1.0, no Host", version=b"HTTP/1.0", host=False),
    Attempt("Host: evil.example", headers=((b"Content-Length", b"2"), (b"Host", b"evil.example"))),
    Attempt("absolute-form, other authority", target=b"http://evil.example/webhook"),
    Attempt("absolute-form, userinfo", target=b"http://u:p@127.0.0.1/webhook"),
    Attempt("X-Original-URL on /other", target=b"/other",
            headers=((b"Content-Length", b"2"), (b"X-Original-URL", b"/webhook"),
                     (b"X-Rewrite-URL", b"/webhook"))),
    Attempt("X-Forwarded-Prefix", headers=((b"Content-Length", b"2"), (b"X-Forwarded-Prefix", b"/x"))),
    Attempt("SCRIPT_NAME header, /x prefix", target=b"/x/webhook",
            headers=((b"Content-Length", b"2"), (b"SCRIPT_NAME", b"/x"))),
    Attempt("SCRIPT-NAME header, /x prefix", target=b"/x/webhook",
            headers=((b"Content-Length", b"2"), (b"SCRIPT-NAME", b"/x"))),
    Attempt("long: 700 x /x/.. then the path (3.5 KB)", target=b"/x/.." * 700 + b"/webhook"),
    Attempt("long: 1700 x /x/.. then the path (8.5 KB)", target=b"/x/.." * 1700 + b"/webhook"),
    Attempt("long: 9000 slashes then the path", target=b"/" * 9000 + b"/webhook"),
    Attempt("raw byte 0xff after the path", target=b"/webhook\xff"),
    Attempt("raw UTF-8 in the path", target=b"/webhook\xc3\xa9"),
    Attempt("raw tab after the path", target=b"/webhook\t"),
    Attempt("raw NUL after the path", target=b"/webhook\x00"),
    Attempt("two spaces before the target", target=b" /webhook"),
    Attempt("OPTIONS *", method=b"OPTIONS", target=b"*", headers=_CL0, body=b""),
    Attempt("%2e%2e%2f from a sibling", target=b"/other/%2e%2e%2fwebhook"),
    Attempt("..%c0%af (overlong /)", target=b"/other/..%c0%afwebhook"),
    Attempt("%%-escape garbage", target=b"/%%77ebhook"),
    Attempt("%u0077 (IIS)", target=b"/%u0077ebhook"),
    Attempt("trailing %20", target=b"/webhook%20"),
    Attempt("trailing .", target=b"/webhook."),
    Attempt("trailing ./", target=b"/webhook/./"),
)  # fmt: skip

#: The configurations tried (plain mount), and the path each protects.
TRIED = {
    "wsgi": (
        ("wsgiguard-flask", "/webhook"),
        ("flask-ext-decorator", "/webhook"),
        ("django-wsgi", "/webhook/"),
    ),
    "asgi": (
        ("asgiguard-starlette", "/webhook"),
        ("fastapi-dependency", "/webhook"),
        ("django-asgi", "/webhook/"),
    ),
}


def outcome(answer: Answer) -> str:
    """As :meth:`Answer.outcome`, with the guard's status: ``guard 400``, ``server 400``, ``404``..."""
    result = answer.outcome()
    return f"guard {answer.status}" if result == "guard" else result


def table(seen: dict[str, dict[str, Counter[str]]], servers: Sequence[str]) -> str:
    """attempt x server -> the answers (``guard 400``: the guard's problem+json)."""
    lines = ["| attempt | " + " | ".join(servers) + " |", "| --- |" + " --- |" * len(servers)]
    for attempt in ATTEMPTS:
        cells = []
        for server in servers:
            counter = seen.get(server, {}).get(attempt.label, Counter())
            cells.append(", ".join(f"{k} x{v}" for k, v in sorted(counter.items())) or "-")
        lines.append(f"| {attempt.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
