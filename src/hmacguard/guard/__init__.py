"""The guard: the fix hmacguard sells, standard library only.

- :mod:`~hmacguard.guard.body`: the bounded body buffer (memory, then a temporary file) and header
  parsing for Content-Length and Content-Encoding;
- :mod:`~hmacguard.guard.verifier`: streaming HMAC verification under a hard cap (sans-I/O);
- :mod:`~hmacguard.guard.replay`: replay stores (memory, Redis);
- :mod:`~hmacguard.guard.ratelimit`: rate limits before the body is read (on ``limits``);
- :mod:`~hmacguard.guard.policy`: the decision core the WSGI and ASGI drivers share;
- :mod:`~hmacguard.guard.problem`: RFC 9457 problem+json answers;
- :mod:`~hmacguard.guard.signer`: the sending side.

The public names are re-exported by :mod:`hmacguard`; the framework drivers live in
:mod:`hmacguard.integrations`.
"""
