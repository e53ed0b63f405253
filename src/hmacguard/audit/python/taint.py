"""The vocabulary of the Python data-flow analysis: taint kinds, where they come from (request
bodies, streams, signature headers) and the shapes of call that consume them.

Split from :mod:`.flow` (which propagates these through a function) so each stays readable; the
kinds are described in :mod:`.flow`'s docstring.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from hmacguard.audit.python.frontend import (
    PyFile,
    call_name,
    dotted,
    is_request_like,
    last_name,
    string_value,
)

BODY, CHUNK, SIG, HEADERS, DIGEST = "body", "chunk", "sig", "headers", "digest"
MAYBE_NONE, HMAC_OBJ, HASH_OBJ, PARAM = "maybe_none", "hmac_obj", "hash_obj", "param"
STREAM = "stream"
#: Kinds that survive being wrapped in a container or an object.
CARRIED = frozenset({BODY, CHUNK, SIG, HEADERS, DIGEST, PARAM})


@dataclass(frozen=True)
class Taint:
    kind: str
    line: int
    #: What produced it, as written: ``request.get_data()``, ``request.stream``...
    api: str = ""
    #: Whose API: flask, django, starlette, aiohttp, wsgi (body sources only).
    framework: str = ""
    #: The node that produced it (its column for findings).
    column: int = 0
    #: For accumulated bodies: "counted" when the accumulating loop enforces a byte limit.
    note: str = ""


Taints = frozenset[Taint]
EMPTY: Taints = frozenset()

# Methods that return a transformed copy of their receiver (still the body, still the digest).
TRANSFORMS = frozenset(
    {
        "decode", "encode", "strip", "lstrip", "rstrip", "lower", "upper", "replace",
        "split", "splitlines", "partition", "rpartition", "removeprefix", "removesuffix",
        "tobytes", "hex", "copy", "format", "casefold", "title",
    }
)  # fmt: skip
# Functions that return (a form of) their first argument.
WRAPPERS = frozenset(
    {
        "bytes", "bytearray", "str", "memoryview", "list", "tuple", "dict", "set", "frozenset",
        "b64encode", "b64decode", "urlsafe_b64encode", "urlsafe_b64decode", "hexlify",
        "unhexlify", "force_bytes", "force_str", "smart_bytes", "smart_str", "ensure_binary",
        "ensure_str", "text_type", "binary_type", "deepcopy", "sorted", "reversed", "dumps",
    }
)  # fmt: skip
CONTAINER_ADD = frozenset({"append", "extend", "add", "insert", "appendleft", "extendleft"})
HASH_ALGOS = frozenset(
    {
        "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "blake2s",
        "sha3_224", "sha3_256", "sha3_384", "sha3_512", "shake_128", "shake_256", "new",
    }
)  # fmt: skip
HEADERS_ATTRS = frozenset({"headers", "META", "environ", "scope"})
HASHY_NAME = re.compile(r"hmac|(^|_)mac$|hasher|digest|signer|^h$|sha", re.IGNORECASE)
# Names of calls that verify or sign their arguments (third-party verifiers, helpers).
_VERIFY_TOKENS = frozenset(
    {"verify", "verified", "verification", "signature", "signatures", "sig", "hmac", "sign",
     "signed", "digest", "mac", "verifier", "webhook"}
)  # fmt: skip
_CAMEL = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def name_tokens(name: str) -> set[str]:
    return {t.lower() for part in name.split("_") for t in _CAMEL.findall(part)}


def looks_like_verifier(call: ast.Call) -> bool:
    """``verify_signature(...)``, ``stripe.Webhook.construct_event(...)``, ``wh.verify(...)``."""
    func = call.func
    name = last_name(func)
    if name is None:
        return False
    if name_tokens(name) & _VERIFY_TOKENS:
        return True
    if isinstance(func, ast.Attribute):
        receiver = dotted(func.value) or ""
        return bool(name_tokens(receiver.replace(".", "_")) & {"webhook", "verifier", "signature"})
    return False


@dataclass(frozen=True)
class SinkHit:
    """A value reaching an HMAC/hash/verifier: the call, the argument and what it carries."""

    call: ast.Call
    arg: ast.expr
    taints: Taints
    what: str


@dataclass
class Summary:
    """What a project function does with its parameters and what it returns."""

    params_to_sink: set[int] = field(default_factory=set)
    returns: set[str] = field(default_factory=set)
    returned_sources: set[Taint] = field(default_factory=set)


def body_source(node: ast.AST, file: PyFile) -> Taint | None:
    """The body-reading API ``node`` is, if any (the expression itself, not what flows into it)."""
    line, col = getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
    fw = file.frameworks
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        attr, recv = node.func.attr, node.func.value
        no_size = not node.args or (
            isinstance(node.args[0], ast.Constant) and node.args[0].value in (None, -1)
        )
        recv_name = dotted(recv) or ""
        if attr == "get_data" and is_request_like(recv):
            return Taint(BODY, line, f"{recv_name}.get_data()", "flask", col)
        if attr == "get_json" and is_request_like(recv) and "flask" in fw:
            # The parsed body: every byte was read into memory to parse it.
            return Taint(BODY, line, f"{recv_name}.get_json()", "flask", col)
        if attr == "body" and not node.args and is_request_like(recv):
            return Taint(BODY, line, f"await {recv_name}.body()", "starlette", col)
        if attr in ("read", "readlines", "readline"):
            whole = no_size and attr != "readline"
            kind = BODY if whole else CHUNK
            shown = f"{recv_name}.{attr}()"
            if (
                isinstance(recv, ast.Attribute)
                and recv.attr == "content"
                and is_request_like(recv.value)
                and "aiohttp" in fw
            ):
                return Taint(kind, line, f"await {shown}", "aiohttp-stream", col)
            if _is_wsgi_input(recv):
                return Taint(kind, line, f"wsgi.input.{attr}()", "wsgi", col)
            if is_request_like(recv):
                if "aiohttp" in fw and attr == "read" and whole:
                    return Taint(BODY, line, f"await {shown}", "aiohttp", col)
                if "django" in fw:
                    lines = "-lines" if attr == "readline" else ""
                    return Taint(kind, line, shown, f"django-stream{lines}", col)
        # Twisted: request.content is the whole body, already spooled; read() loads it all.
        twisted = isinstance(recv, ast.Attribute) and recv.attr == "content" and "twisted" in fw
        if attr == "read" and no_size and twisted and is_request_like(getattr(recv, "value", recv)):
            return Taint(BODY, line, f"{recv_name}.read()", "twisted", col)
        if attr == "read" and recv_name.endswith("rfile"):
            # http.server: rfile.read(n) reads as many bytes as the client's Content-Length says.
            return Taint(BODY, line, f"{recv_name}.read()", "http.server", col)
        if attr == "text" and not node.args and is_request_like(recv) and "aiohttp" in fw:
            return Taint(BODY, line, f"await {recv_name}.text()", "aiohttp", col)
    if isinstance(node, ast.Attribute) and is_request_like(node.value):
        recv_name = dotted(node.value) or ""
        if node.attr in ("data", "json") and "flask" in fw:
            return Taint(BODY, line, f"{recv_name}.{node.attr}", "flask", col)
        if node.attr == "body" and "django" in fw:
            return Taint(BODY, line, f"{recv_name}.body", "django", col)
    return None


def _is_wsgi_input(node: ast.AST) -> bool:
    if isinstance(node, ast.Subscript):
        return string_value(node.slice) == "wsgi.input"
    if isinstance(node, ast.Call) and call_name(node) == "get" and node.args:
        return string_value(node.args[0]) == "wsgi.input"
    return False


def stream_source(node: ast.AST, file: PyFile) -> Taint | None:
    """An iterable that yields body chunks or lines: ``request.stream``, ``request.stream()``."""
    line, col = getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
    if (
        isinstance(node, ast.Attribute)
        and node.attr in ("stream", "input_stream")
        and is_request_like(node.value)
    ):
        return Taint(CHUNK, line, f"{dotted(node)} (iterated: yields lines)", "flask-lines", col)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        recv = node.func.value
        if node.func.attr == "stream" and is_request_like(recv):
            return Taint(CHUNK, line, f"{dotted(recv)}.stream()", "starlette", col)
        if (
            node.func.attr in ("iter_chunked", "iter_any")
            and isinstance(recv, ast.Attribute)
            and recv.attr == "content"
            and is_request_like(recv.value)
        ):
            return Taint(CHUNK, line, f"{dotted(node.func)}()", "aiohttp-stream", col)
    if is_request_like(node) and "django" in file.frameworks:
        return Taint(CHUNK, line, f"{dotted(node)} (iterated: yields lines)", "django-lines", col)
    return None
