"""Review of the one reading of a Redis URL for both stores (redis_urls.parse_url, limit_stores):
secrets that leak, options that do not take, URLs the two stores read apart, 500s instead of a
ConfigurationError at construction.

Each test was written as a strict xfail ("BUG: ...") against main, then the fix made it pass; its
docstring says what it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hmacguard import RateLimiter, RedisReplayStore
from hmacguard.errors import ConfigurationError
from hmacguard.guard.redis_urls import endpoint_key, keyspace_key, redacted

from ._redis_topologies import Cluster, Single, redis_cluster, redis_single

#: A distinctive secret: any substring of it in a message is a leak (not a common word).
SECRET = "Zq7xK9vW"


def _refusals(url: str) -> list[str]:
    """The ConfigurationError messages of both stores built from ``url`` (each must refuse it)."""
    messages = []
    for build in (
        lambda: RedisReplayStore(url, timeout=0.3),
        lambda: RateLimiter(limit="5/second", storage=url, timeout=0.3),
    ):
        with pytest.raises(ConfigurationError) as refused:
            build()
        messages.append(str(refused.value))
    return messages


# -- (a) secrets in messages and keys --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"redis+cluster://guard:{SECRET[:3]}/{SECRET[3:]}@127.0.0.1:7000",
        f"rediss+sentinel://:{SECRET[:3]}/{SECRET[3:]}@127.0.0.1:26379/svc",
        f"redis://:{SECRET[:3]}/{SECRET[3:]}@127.0.0.1:6379/0",
        f"redis://:{SECRET[:3]}?{SECRET[3:]}@127.0.0.1:6379/0",
        f"redis://:{SECRET[:3]}#{SECRET[3:]}@127.0.0.1:6379/0",
        f"rediss+cluster://:{SECRET[:3]}#{SECRET[3:]}@127.0.0.1:7000",
    ],
    ids=["cluster-slash", "sentinel-slash", "single-slash", "single-question", "single-hash", "cluster-hash"],
)
def test_a_password_with_an_unencoded_url_delimiter_is_refused_without_showing_it(url: str) -> None:
    """Was (strict xfail, BUG): a password holding an unencoded '/', '?' or '#' ends the URL's
    authority early, so ``redacted`` found no ``@`` in it and quoted the URL whole -- the password
    in the ConfigurationError of both stores (``bad Redis URL 'redis+cluster://guard:Zq7/xK9vW@...':
    ':Zq7' is not host:port``), and redis-py's own message (``Port could not be cast to integer value
    as 'Zq7'``) quoted its first part. Now such a URL is refused before redis-py reads it, the URL
    shown as ``scheme://***``, with a hint to percent-encode."""
    for message in _refusals(url):
        assert SECRET[:3] not in message and SECRET[3:] not in message, message
        assert "percent-encode" in message, message
    assert SECRET[:3] not in redacted(url) and SECRET[3:] not in redacted(url)


@pytest.mark.parametrize(
    "url",
    [
        # redis-py's documented form for a unix socket's password; a bad db makes it an error.
        f"unix:///tmp/hmacguard-absent.sock?password={SECRET}&db=x",
        f"redis://127.0.0.1:6379/0?password={SECRET}&db=x",
        # A mistyped option name whose value is the Sentinel's password.
        f"redis+sentinel://127.0.0.1:26379/svc?sentinel_pasword={SECRET}",
        f"rediss+cluster://127.0.0.1:7000?password={SECRET}",
    ],
    ids=["unix-password", "single-password", "sentinel-typo", "cluster-password"],
)
def test_a_secret_in_a_query_option_is_never_shown(url: str) -> None:
    """Was (strict xfail, BUG): ``redacted`` masked only ``sentinel_password``: redis-py's
    ``?password=`` (its documented form for ``unix://``), or a mistyped ``sentinel_pasword=``, was
    quoted in clear by both stores' ConfigurationError. Now only the values of known, non-secret
    options are shown."""
    for message in _refusals(url):
        assert SECRET not in message, message
    assert SECRET not in redacted(url)


def test_keyspace_and_endpoint_keys_carry_no_password_from_the_query() -> None:
    """Was (strict xfail, BUG): ``keyspace_key`` (a store's public ``keyspace``) kept redis-py's
    ``?password=`` option, the password with it; credentials are not what keys a store reaches."""
    url = f"redis://127.0.0.1:6379/0?password={SECRET}&db=0"
    store = RedisReplayStore(url, timeout=0.3)
    assert SECRET not in store.keyspace and SECRET not in keyspace_key(url)
    assert SECRET not in endpoint_key(url)
    assert keyspace_key(url) == keyspace_key("redis://127.0.0.1:6379/0?db=0")


# -- (b) verification skipped although asked for --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "rediss+cluster://127.0.0.1:7000?ssl_cert_reqs=required&ssl_cert_reqs=none",
        "rediss+sentinel://127.0.0.1:26379/svc?ssl_cert_reqs=required&ssl_cert_reqs=none",
        "rediss://127.0.0.1:6379/0?ssl_cert_reqs=required&ssl_cert_reqs=none",
    ],
    ids=["cluster", "sentinel", "single"],
)
def test_a_repeated_query_option_is_refused(url: str) -> None:
    """Was (strict xfail, BUG): ``ssl_cert_reqs=required&ssl_cert_reqs=none`` -- parse_qsl in
    parse_url keeps the last value, redis-py's from_url the first: the same query verified the
    server on ``rediss://`` and did not on ``rediss+cluster://`` (measured on TLS servers with a
    private CA and no ssl_ca_certs: the one server refused, 503; the Cluster was used unverified by
    both stores). Which one the operator meant is not for a parser to guess."""
    _refusals(url)


# -- (d) a 500 at every request instead of a ConfigurationError at construction --------------------


@pytest.mark.parametrize(
    "url",
    [
        "rediss://127.0.0.1:1/0?ssl_ca_cert=/etc/typo.pem",  # ssl_ca_certs mistyped
        "redis://127.0.0.1:1/0?ssl_ca_certs=/etc/ca.pem",  # a CA without rediss://
        "rediss://127.0.0.1:1/0?ssl_cert_reqs=CERT_NONE",  # not a spelling redis-py reads
        "unix:///tmp/hmacguard-absent.sock?ssl=true",
    ],
    ids=["typo", "ca-without-tls", "cert-reqs-spelling", "unix-ssl"],
)
def test_a_one_server_url_with_an_option_redis_py_cannot_take_is_refused_at_construction(url: str) -> None:
    """Was (strict xfail, BUG): one-server URLs go to redis-py's ``from_url``, which passes an
    unknown query option on to the connection class -- built at the first command, so both stores
    were built fine and every request raised ``TypeError: AbstractConnection.__init__() got an
    unexpected keyword argument 'ssl_ca_cert'`` (a 500 with a traceback, under gunicorn and
    uvicorn alike), and ``ssl_cert_reqs=CERT_NONE`` a RedisError (503 forever). Cluster and Sentinel
    URLs refuse both at construction; a one-server URL now does too."""
    _refusals(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:7\u00b2",  # '²' is a digit to str.isdigit, not to int()
        "redis+sentinel://127.0.0.1:26379/svc/\u00b2",
        "redis+cluster://127.0.0.1:70000",  # no such port
        "rediss+sentinel://127.0.0.1:0/svc",
    ],
    ids=["port-superscript", "db-superscript", "port-range", "port-zero"],
)
def test_a_bad_port_or_db_is_a_configuration_error_for_both_stores(url: str) -> None:
    """Was (strict xfail, BUG): ``str.isdigit`` takes '²', which ``int()`` refuses: a bare
    ValueError (a traceback at start-up) from both stores. A port out of range was taken by the
    replay store (503 at every request) and refused by limits for Sentinel only ('Unable to parse
    storage uri'): the two stores disagreed on one URL."""
    _refusals(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:26379/svc/two",
        "redis+sentinel://127.0.0.1:26379/svc/2/extra",
        "redis+cluster://127.0.0.1:7000/5",
    ],
    ids=["sentinel-db-word", "sentinel-extra", "cluster-db"],
)
def test_a_path_the_url_cannot_mean_is_refused_not_read_as_db_0(url: str) -> None:
    """Was (strict xfail, BUG): a Sentinel db that is not a number, anything after it, and a
    Cluster URL's ``/5`` (a Cluster has only db 0) were dropped without a word: both stores used db
    0, the keys of whatever else lives there."""
    _refusals(url)


# -- (e) client objects: an asyncio client is refused, not half-used ---------------------------------


@pytest.fixture(scope="module")
def single() -> Iterator[Single]:
    with redis_single() as server:
        yield server


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with redis_cluster(3) as nodes:
        yield nodes


@pytest.mark.slow
@pytest.mark.redis
def test_an_asyncio_redis_client_is_refused_by_both_stores(single: Single) -> None:
    """Was (strict xfail, BUG): ``RedisReplayStore(client=redis.asyncio.Redis(...))`` was taken,
    and every ``SET NX`` returned an un-awaited coroutine -- true: every delivery id was new, the same
    delivery accepted twice, replay protection silently off. ``RateLimiter(storage=...)`` took it
    too and raised AttributeError at every request (a 500). Both now refuse an asyncio client at
    construction."""
    import redis.asyncio

    client: Any = redis.asyncio.Redis(host="127.0.0.1", port=single.port)
    with pytest.raises(ConfigurationError, match="asyncio"):
        RedisReplayStore(client=client, timeout=3)
    with pytest.raises(ConfigurationError, match="asyncio"):
        RateLimiter(limit="1/hour", storage=client, timeout=3)
    # The synchronous client still works, for both.
    sync = single.client()
    store = RedisReplayStore(client=sync, timeout=3)
    key = uuid.uuid4().hex
    assert store.hold(key, 30) is not None and store.hold(key, 30) is None


@pytest.mark.slow
@pytest.mark.redis
def test_an_asyncio_redis_cluster_client_is_refused_by_the_rate_limiter(cluster: Cluster) -> None:
    """Was (strict xfail, BUG): e1b36b0 took any object with ``get_primaries`` and ``keyslot`` as a
    RedisCluster -- ``redis.asyncio.cluster.RedisCluster`` has both, and was refused before; now it
    was taken and every request raised ``TypeError: int() argument must be ... not 'coroutine'``
    (a 500). The replay store took it as well (every hold a coroutine: every delivery new)."""
    from redis.asyncio.cluster import RedisCluster

    client: Any = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    with pytest.raises(ConfigurationError, match="asyncio"):
        RateLimiter(limit="1/hour", storage=client, timeout=3)
    with pytest.raises(ConfigurationError, match="asyncio"):
        RedisReplayStore(client=client, timeout=3)
