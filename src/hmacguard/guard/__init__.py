"""The guard: the fix hmacguard sells, standard library only.

- :mod:`~hmacguard.guard.body`: the bounded body buffer (memory, then a temporary file) and header
  parsing for Content-Length and Content-Encoding;
- :mod:`~hmacguard.guard.verifier`: streaming HMAC verification under a hard cap (sans-I/O), over
  the keyed HMAC objects of :mod:`~hmacguard.guard.macs`;
- :mod:`~hmacguard.guard.paths`: which request paths are protected -- the trust boundary;
- :mod:`~hmacguard.guard.replay`: replay stores (memory, Redis) with two-phase delivery holds;
- :mod:`~hmacguard.guard.ratelimit`: rate limits before the body is read (on ``limits``), with the
  client-address trust model in :mod:`~hmacguard.guard.clients` and the storages in
  :mod:`~hmacguard.guard.limit_stores`;
- :mod:`~hmacguard.guard.redis_urls` and :mod:`~hmacguard.guard.breaker`: Redis deployments by URL
  (one server, Cluster, Sentinel), and the circuit breaker an outage trips;
- :mod:`~hmacguard.guard.policy`: the decision core the WSGI and ASGI drivers share;
- :mod:`~hmacguard.guard.decision`: what each decision reports, to logs and to metrics
  (:mod:`~hmacguard.guard.prometheus`, :mod:`~hmacguard.guard.otel`);
- :mod:`~hmacguard.guard.problem`: RFC 9457 problem+json answers;
- :mod:`~hmacguard.guard.signer`: the sending side.

The public names are re-exported by :mod:`hmacguard`; the framework drivers live in
:mod:`hmacguard.integrations`. Optional back-ends (redis-py, limits, prometheus-client,
opentelemetry-api) are imported only when something that needs them is built.
"""
