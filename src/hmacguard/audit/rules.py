"""Importing this module registers every audit rule (one module per rule)."""

from __future__ import annotations

from hmacguard.audit.config import (
    aiohttp_client_max_size,
    django_asgi_body_bypass,
    django_upload_limit,
    flask_max_content_length,
    nginx_client_max_body_size,
    starlette_body_limit,
    werkzeug_streaming_limit,
)
from hmacguard.audit.javascript import (
    body_parser_limit,
    parser_limit_stream_bypass,
    unbounded_concat,
)
from hmacguard.audit.javascript import (
    content_length_guard as js_content_length_guard,
)
from hmacguard.audit.javascript import (
    retained_global as js_retained_global,
)
from hmacguard.audit.javascript import (
    signature_compare_timing as js_signature_compare_timing,
)
from hmacguard.audit.javascript import (
    unbounded_body_read as js_unbounded_body_read,
)
from hmacguard.audit.python import (
    attached_to_request,
    body_in_cache,
    compare_digest_none,
    content_length_guard,
    retained_global,
    signature_compare_timing,
    stream_line_iteration,
    unbounded_body_hmac,
    unbounded_body_read,
)

#: The rule modules, in the order ``hmacguard rules`` lists them.
MODULES = (
    unbounded_body_hmac,
    unbounded_body_read,
    content_length_guard,
    stream_line_iteration,
    retained_global,
    attached_to_request,
    body_in_cache,
    signature_compare_timing,
    compare_digest_none,
    unbounded_concat,
    js_unbounded_body_read,
    js_content_length_guard,
    js_retained_global,
    body_parser_limit,
    parser_limit_stream_bypass,
    js_signature_compare_timing,
    django_upload_limit,
    flask_max_content_length,
    starlette_body_limit,
    aiohttp_client_max_size,
    nginx_client_max_body_size,
    django_asgi_body_bypass,
    werkzeug_streaming_limit,
)
