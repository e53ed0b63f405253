"""Reading an OpenAPI document: which operations take a body and carry a signature.

The rules (also in :mod:`hmacguard.scan.openapi`, which scans what this finds):

- a security requirement (the operation's own ``security``, else the document's) naming a scheme of
  type ``apiKey`` ``in: header`` whose header name or description says signature or HMAC, or
- a header parameter (the path item's or the operation's, ``$ref`` resolved) named like a signature
  header (``signature``, ``hmac``, ``sig`` as a word).

Local ``$ref`` are followed; remote ones are not (their target is treated as empty).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hmacguard.errors import ConfigurationError

__all__ = [
    "DeclaredLimit",
    "OpenApiSpec",
    "Operation",
    "SkippedOperation",
    "discover_signed_operations",
    "load_openapi",
    "parse_size_value",
    "survey_operations",
]

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SCANNABLE = ("POST", "PUT", "PATCH")
_SIGNATURE_NAME = re.compile(r"signature|hmac|(^|[-_])sig($|[-_])", re.IGNORECASE)
_SIGNATURE_TEXT = re.compile(r"signature|hmac", re.IGNORECASE)
_KNOWN_HEADERS = {
    "x-hub-signature-256": "github",
    "stripe-signature": "stripe",
    "x-slack-signature": "slack",
    "webhook-signature": "standard-webhooks",
}
_LIMIT_EXTENSIONS = ("x-max-body-size", "x-maxBodySize", "x-body-limit", "x-hmacguard-max-body")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?)b?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class OpenApiSpec:
    """A parsed specification; ``text`` (when read from a file) lets locations carry line numbers."""

    data: Mapping[str, Any]
    path: str | None = None
    text: str | None = None

    @property
    def title(self) -> str:
        info = self.data.get("info")
        title = info.get("title") if isinstance(info, Mapping) else None
        return str(title or self.path or "OpenAPI document")


@dataclass(frozen=True)
class DeclaredLimit:
    bytes: int
    #: Where the spec says it, e.g. ``requestBody application/octet-stream schema maxLength``.
    where: str


@dataclass(frozen=True)
class Operation:
    """A signed operation that takes a body: what the scan needs to reach and sign it."""

    method: str
    path: str
    operation_id: str | None
    content_types: tuple[str, ...]
    signature_header: str
    #: How the signature was recognised: ``security scheme hubSig`` or ``header parameter``.
    signature_source: str
    scheme: str
    declared_limit: DeclaredLimit | None
    #: JSON pointer to the operation (``#/paths/~1webhook/post``) and its line in the spec file.
    pointer: str
    line: int | None = None
    path_values: Mapping[str, str] | None = None

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, base_url: str) -> str:
        path = self.path
        for name, value in (self.path_values or {}).items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return base_url.rstrip("/") + path


@dataclass(frozen=True)
class SkippedOperation:
    method: str
    path: str
    reason: str


def _load_yaml(text: str, origin: str) -> Any:
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise ConfigurationError(
            f"{origin} is YAML, which needs PyYAML: pip install 'hmacguard[openapi]' (or give JSON)"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{origin} is not valid YAML: {str(exc).splitlines()[0]}") from None


def load_openapi(path: str | Path) -> OpenApiSpec:
    """Read an OpenAPI 3.x or Swagger 2.0 document (JSON always, YAML with PyYAML)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text") from None
    if file.suffix.lower() in (".yaml", ".yml") or not text.lstrip().startswith(("{", "[")):
        data = _load_yaml(text, str(path))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict) or not ("openapi" in data or "swagger" in data):
        raise ConfigurationError(f"{path} is not an OpenAPI document (no 'openapi' or 'swagger' key)")
    if not isinstance(data.get("paths", {}), dict):
        raise ConfigurationError(f"{path}: 'paths' must be a mapping")
    return OpenApiSpec(data, str(path), text)


def _resolve(spec: Mapping[str, Any], node: Any, depth: int = 0) -> Any:
    """Follow a local ``$ref`` (``#/components/...``); remote references are not followed."""
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and depth < 32:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return {}
        target: Any = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        node, depth = target if target is not None else {}, depth + 1
    return node


def parse_size_value(value: Any) -> int | None:
    """``1048576``, ``"1MiB"``, ``"1m"`` (binary), ``"1MB"`` (decimal) -> bytes; None if not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value > 0 else None
    m = _SIZE.match(str(value))
    if not m:
        return None
    number, letter, binary = float(m.group(1)), m.group(2).lower(), m.group(3)
    power = "kmg".index(letter) + 1 if letter else 0
    base = 1024 if binary or (letter and not str(value).strip().lower().endswith("b")) else 1000
    return int(number * base**power) or None


def _declared(spec: Mapping[str, Any], op: Mapping[str, Any], body: Mapping[str, Any] | None,
              media: Mapping[str, Any]) -> DeclaredLimit | None:  # fmt: skip
    found: list[DeclaredLimit] = []
    for owner, label in ((op, "operation"), (body or {}, "requestBody")):
        for ext in _LIMIT_EXTENSIONS:
            size = parse_size_value(owner.get(ext)) if ext in owner else None
            if size:
                found.append(DeclaredLimit(size, f"{label} {ext}"))
    for content_type, item in media.items():
        item = _resolve(spec, item) if isinstance(item, Mapping) else {}
        for ext in _LIMIT_EXTENSIONS:
            size = parse_size_value(item.get(ext)) if ext in item else None
            if size:
                found.append(DeclaredLimit(size, f"requestBody {content_type} {ext}"))
        schema = _resolve(spec, item.get("schema") or {})
        # maxLength bounds the body only when the body *is* the string (a binary upload, raw text).
        limit = schema.get("maxLength") if isinstance(schema, Mapping) else None
        if isinstance(limit, int) and limit > 0 and schema.get("type") in ("string", None):
            found.append(DeclaredLimit(limit, f"requestBody {content_type} schema maxLength"))
    # Several declarations (one per media type): the loosest is what a sender may legitimately send.
    return max(found, key=lambda d: d.bytes) if found else None


def _parameters(
    spec: Mapping[str, Any], item: Mapping[str, Any], op: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
        param = _resolve(spec, raw)
        if isinstance(param, Mapping) and "name" in param:
            merged[(str(param.get("in")), str(param["name"]).lower())] = param
    return list(merged.values())


def _security_schemes(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    components = spec.get("components") or {}
    schemes = components.get("securitySchemes") if isinstance(components, Mapping) else None
    return schemes or spec.get("securityDefinitions") or {}


def _signature(spec: Mapping[str, Any], op: Mapping[str, Any],
               params: list[Mapping[str, Any]]) -> tuple[str, str, str | None] | None:  # fmt: skip
    """(header, how it was recognised, explicit x-hmacguard-scheme) or None when unsigned."""
    requirements = op["security"] if "security" in op else spec.get("security") or []
    schemes = _security_schemes(spec)
    for requirement in requirements if isinstance(requirements, list) else []:
        for name in requirement if isinstance(requirement, Mapping) else []:
            scheme = _resolve(spec, schemes.get(name) or {})
            if (
                not isinstance(scheme, Mapping)
                or scheme.get("type") != "apiKey"
                or scheme.get("in") != "header"
            ):
                continue
            header = str(scheme.get("name") or "")
            if header and (
                _SIGNATURE_NAME.search(header) or _SIGNATURE_TEXT.search(str(scheme.get("description", "")))
            ):
                return header, f"security scheme {name}", scheme.get("x-hmacguard-scheme")
    for param in params:
        if param.get("in") == "header" and _SIGNATURE_NAME.search(str(param["name"])):
            return str(param["name"]), "header parameter", None
    return None


def _path_values(params: list[Mapping[str, Any]]) -> dict[str, str]:
    """A value for each path parameter: its example, default or first enum value, else a filler."""
    values = {}
    for param in params:
        if param.get("in") != "path":
            continue
        raw_schema = param.get("schema")
        schema: Mapping[str, Any] = raw_schema if isinstance(raw_schema, Mapping) else param
        enum = schema.get("enum") or []
        candidates = [param.get("example"), schema.get("example"), schema.get("default"), *enum]
        chosen = next((c for c in candidates if c is not None), None)
        if chosen is None:
            chosen = 1 if schema.get("type") in ("integer", "number") else "hmacguard"
        values[str(param["name"])] = str(chosen)
    return values


def _line_of(text: str | None, path: str, method: str) -> int | None:
    """The operation's line: the method key after the path key (works for JSON and YAML)."""
    if not text:
        return None
    at = re.search(r"""(^|[\s{,])["']?""" + re.escape(path) + r"""["']?\s*:""", text, re.MULTILINE)
    if at is None:
        return None
    key = re.compile(r"""["']?""" + method.lower() + r"""["']?\s*:""")
    found = key.search(text, at.end())
    position = found.start() if found else at.start()
    return text.count("\n", 0, position) + 1


def survey_operations(
    spec: OpenApiSpec | Mapping[str, Any],
) -> tuple[list[Operation], list[SkippedOperation]]:
    """Every operation, sorted into signed-with-a-body (to scan) and skipped (with the reason)."""
    doc = spec if isinstance(spec, OpenApiSpec) else OpenApiSpec(spec)
    data, swagger = doc.data, "swagger" in doc.data
    found: list[Operation] = []
    skipped: list[SkippedOperation] = []
    for path, raw_item in (data.get("paths") or {}).items():
        item = _resolve(data, raw_item)
        if not isinstance(item, Mapping):
            continue
        for key, op in item.items():  # document order, which is the order a reader expects
            method = str(key).lower()
            if method not in _HTTP_METHODS or not isinstance(op, Mapping):
                continue
            upper = method.upper()
            params = _parameters(data, item, op)
            if swagger:
                body_params = [p for p in params if p.get("in") in ("body", "formData")]
                types = op.get("consumes") or data.get("consumes") or ["application/json"]
                body: Mapping[str, Any] | None = body_params[0] if body_params else None
                media = {str(t): ({"schema": body.get("schema", {})} if body else {}) for t in types}
            else:
                body = _resolve(data, op.get("requestBody")) if "requestBody" in op else None
                media = dict(body.get("content") or {}) if isinstance(body, Mapping) else {}
            if body is None or (not swagger and not media):
                skipped.append(SkippedOperation(upper, path, "takes no request body"))
                continue
            signature = _signature(data, op, params)
            if signature is None:
                skipped.append(SkippedOperation(upper, path, "carries no signature header"))
                continue
            if upper not in _SCANNABLE:
                skipped.append(
                    SkippedOperation(upper, path, f"the scanner sends {', '.join(_SCANNABLE)} only")
                )
                continue
            header, source, explicit = signature
            scheme = str(
                op.get("x-hmacguard-scheme") or explicit or _KNOWN_HEADERS.get(header.lower(), "generic")
            )
            found.append(
                Operation(
                    method=upper,
                    path=str(path),
                    operation_id=op.get("operationId"),
                    content_types=tuple(str(t) for t in media),
                    signature_header=header,
                    signature_source=source,
                    scheme=scheme,
                    declared_limit=_declared(data, op, body, media),
                    pointer="#/paths/" + str(path).replace("~", "~0").replace("/", "~1") + "/" + method,
                    line=_line_of(doc.text, str(path), method),
                    path_values=_path_values(params),
                )
            )
    return found, skipped


def discover_signed_operations(spec: OpenApiSpec | Mapping[str, Any]) -> list[Operation]:
    """The operations that take a request body and carry a signature, in document order."""
    return survey_operations(spec)[0]
