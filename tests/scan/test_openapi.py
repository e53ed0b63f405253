"""OpenAPI discovery and scanning: exactly the operations that take a body and carry a signature.

The acceptance: a spec with 5 operations, 2 of them signed (one by a security scheme, one by a header
parameter), scanned against a real lab target (django-stateless under gunicorn): exactly those 2 are
scanned, each within its share of the budget, and the declared limits are compared with the limit the
server enforces (Django refuses above 2.5 MiB: the 2.5 MiB declaration holds, the 64 KiB one does not).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hmacguard.errors import ConfigurationError
from hmacguard.lab import run_target
from hmacguard.report.baseline import read_baseline
from hmacguard.report.html import render_scan_html
from hmacguard.report.json import render_json
from hmacguard.report.junit import render_junit
from hmacguard.report.sarif import render_sarif
from hmacguard.report.terminal.scan import render_openapi_scan
from hmacguard.scan import Budget
from hmacguard.scan.config import KiB, MiB
from hmacguard.scan.openapi import (
    discover_signed_operations,
    load_openapi,
    scan_openapi,
    split_budget,
    survey_operations,
)
from hmacguard.scan.openapi_spec import parse_size_value
from hmacguard.scan.rules import SCAN_RULE_IDS

DJANGO_LIMIT = 2621440  # Django's default DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB)


def five_operations() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Lab webhooks", "version": "1"},
        "paths": {
            "/webhook": {
                "post": {
                    "operationId": "receive",
                    "security": [{"hubSignature": []}],
                    "requestBody": {
                        "x-max-body-size": DJANGO_LIMIT,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {"200": {"description": "ok"}},
                },
                "put": {
                    "operationId": "replace",
                    "parameters": [{"$ref": "#/components/parameters/Signature"}],
                    "requestBody": {"$ref": "#/components/requestBodies/Blob"},
                    "responses": {"200": {"description": "ok"}},
                },
            },
            "/health": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/items": {
                "post": {
                    "security": [{"apiKey": []}],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"201": {"description": "created"}},
                }
            },
            "/items/{id}": {
                "delete": {
                    "security": [{"hubSignature": []}],
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {"204": {"description": "gone"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "hubSignature": {"type": "apiKey", "in": "header", "name": "X-Hub-Signature-256"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "parameters": {
                "Signature": {
                    "name": "X-Hub-Signature-256",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "requestBodies": {
                "Blob": {
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary", "maxLength": 65536}
                        }
                    }
                }
            },
        },
    }


def test_discovery_finds_the_two_signed_operations_with_bodies(tmp_path: Path) -> None:
    spec_file = tmp_path / "api.json"
    spec_file.write_text(json.dumps(five_operations(), indent=2))
    spec = load_openapi(spec_file)
    ops, skipped = survey_operations(spec)
    assert [op.key for op in ops] == ["POST /webhook", "PUT /webhook"]
    post, put = ops
    assert (post.signature_source, post.scheme, post.content_types) == (
        "security scheme hubSignature", "github", ("application/json",)
    )  # fmt: skip
    assert post.declared_limit is not None and post.declared_limit.bytes == DJANGO_LIMIT
    assert (put.signature_source, put.signature_header) == ("header parameter", "X-Hub-Signature-256")
    assert put.declared_limit is not None and put.declared_limit.bytes == 65536
    assert put.content_types == ("application/octet-stream",)
    # Lines in the spec file, for SARIF locations.
    lines = spec_file.read_text().splitlines()
    assert lines[post.line - 1].strip().startswith('"post"')  # type: ignore[operator]
    assert lines[put.line - 1].strip().startswith('"put"')  # type: ignore[operator]
    assert {(s.method, s.path): s.reason for s in skipped} == {
        ("GET", "/health"): "takes no request body",
        ("POST", "/items"): "carries no signature header",  # X-API-Key is a key, not a signature
        ("DELETE", "/items/{id}"): "takes no request body",
    }


def test_yaml_swagger2_and_explicit_schemes(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    spec_file = tmp_path / "api.yaml"
    spec_file.write_text(
        "swagger: '2.0'\n"
        "info: {title: old, version: '1'}\n"
        "consumes: [application/json]\n"
        "securityDefinitions:\n"
        "  stripe: {type: apiKey, in: header, name: Stripe-Signature}\n"
        "  custom: {type: apiKey, in: header, name: X-Token, description: HMAC-SHA256 of the body}\n"
        "paths:\n"
        "  /stripe/{account}:\n"
        "    post:\n"
        "      security: [{stripe: []}]\n"
        "      parameters:\n"
        "        - {name: account, in: path, required: true, type: string, example: acct 1}\n"
        "        - {name: payload, in: body, schema: {type: object}}\n"
        "  /custom:\n"
        "    patch:\n"
        "      x-hmacguard-scheme: generic\n"
        "      security: [{custom: []}]\n"
        "      parameters: [{name: payload, in: body, schema: {type: string, maxLength: 1024}}]\n"
        "    get:\n"
        "      security: [{custom: []}]\n"
    )
    ops = discover_signed_operations(load_openapi(spec_file))
    assert [(op.key, op.scheme, op.signature_header) for op in ops] == [
        ("POST /stripe/{account}", "stripe", "Stripe-Signature"),
        ("PATCH /custom", "generic", "X-Token"),
    ]
    assert ops[0].url("http://127.0.0.1:9/api/") == "http://127.0.0.1:9/api/stripe/acct%201"
    assert ops[1].declared_limit is not None and ops[1].declared_limit.bytes == 1024
    assert ops[0].line == 9 and ops[1].line == 15


def test_unscannable_and_malformed_specs_are_one_line_errors(tmp_path: Path) -> None:
    spec = five_operations()
    spec["paths"]["/webhook"]["delete"] = {
        "security": [{"hubSignature": []}],
        "requestBody": {"content": {"a/b": {}}},
    }
    _, skipped = survey_operations(spec)
    assert any(s.method == "DELETE" and "POST, PUT, PATCH" in s.reason for s in skipped)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_openapi(bad)
    bad.write_text(json.dumps({"info": {}}))
    with pytest.raises(ConfigurationError, match="not an OpenAPI document"):
        load_openapi(bad)
    unsigned = {"openapi": "3.1.0", "info": {"title": "t"}, "paths": {"/x": {"get": {}}}}
    with pytest.raises(ConfigurationError, match="no operation takes a request body"):
        scan_openapi(unsigned, "http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="too small for 2 operations"):
        split_budget(Budget(bytes=6 * KiB), 2)


def test_declared_size_values() -> None:
    assert parse_size_value("1MiB") == 1048576
    assert parse_size_value("1m") == 1048576
    assert parse_size_value("1MB") == 1000000
    assert parse_size_value(2048) == 2048
    assert parse_size_value("lots") is None and parse_size_value(True) is None and parse_size_value(0) is None


@pytest.mark.slow
def test_scans_exactly_the_two_signed_operations_of_a_real_target(tmp_path: Path) -> None:
    spec_file = tmp_path / "api.json"
    spec_file.write_text(json.dumps(five_operations(), indent=2))
    budget = Budget(
        bytes=96 * MiB, seconds=40, request_timeout=2.0, ladder=(KiB, MiB, 8 * MiB), max_size=8 * MiB,
        retention_size=64 * KiB, retention_warmup=2, retention_rounds=3, retention_per_round=2,
        burst_requests=4, burst_concurrency=2, burst_size=64 * KiB,
    )  # fmt: skip
    with run_target("django-stateless") as t:
        result = scan_openapi(load_openapi(spec_file), t.base_url, budget=budget, secret=t.secret)
    assert [(r.method, r.url) for r in result.reports] == [
        ("POST", f"{t.base_url}/webhook"),
        ("PUT", f"{t.base_url}/webhook"),
    ]
    assert [s.path for s in result.skipped] == ["/health", "/items", "/items/{id}"]
    assert result.budget_per_operation == {"bytes": 48 * MiB, "seconds": 20.0, "operations": 2}
    for report in result.reports:
        assert report.bytes_sent <= 48 * MiB and report.signed
        assert report.budget["bytes"] == 48 * MiB
    post, put = result.comparisons
    # Django refuses above 2.5 MiB: the POST's declaration holds; the PUT's 64 KiB does not.
    assert post.verdict == "enforced", post
    assert put.verdict == "not-enforced", put
    assert put.largest_accepted is not None and put.largest_accepted > 65536
    # The declared size itself was probed.
    assert any(m.size == 65536 for m in result.reports[1].measurements)
    data = result.to_dict()
    assert [op["path"] for op in data["operations"]] == ["/webhook", "/webhook"]

    # Every report format takes the OpenAPI scan whole.
    sarif = json.loads(render_sarif(result))
    for res in sarif["runs"][0]["results"]:
        location = res["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == spec_file.as_uri()
        assert location["region"]["startLine"] in {op.line for op in result.operations}
        assert res["properties"]["source"] == "openapi"
    html = render_scan_html(result)
    assert html.count('<section id="op-') == 2 and "not-enforced" in html and "/items/{id}" in html
    assert ET.fromstring(render_junit(result)).get("tests") == str(2 * len(SCAN_RULE_IDS))
    console = Console(record=True, width=160)
    render_openapi_scan(result, console)
    text = console.export_text()
    assert "PUT /webhook" in text and "not-enforced" in text and "not scanned: GET /health" in text
    # A baseline taken from this scan's SARIF, or from its JSON, hides every finding of both operations.
    for baseline in (render_sarif(result), render_json(result)):
        quiet = result.without_baseline(read_baseline(baseline, kind=result.kind))
        assert result.findings and not quiet.findings
