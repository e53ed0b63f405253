"""Redis URLs read without a server: their options checked, their secrets never shown."""

from __future__ import annotations

import pytest

from hmacguard import RateLimiter, RedisReplayStore
from hmacguard.errors import ConfigurationError
from hmacguard.guard.redis_urls import keyspace_key, parse_url, redacted

SECRET = "s3cr%40t"  # percent-encoded "s3cr@t"
SENTINEL_SECRET = "sentinel-s3cret"


def test_the_url_credentials_are_the_data_nodes_and_sentinel_has_its_own() -> None:
    target = parse_url(
        f"rediss+sentinel://guard:{SECRET}@10.0.0.1:26379,[::1]:26380/primary/2"
        f"?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required&sentinel_password={SENTINEL_SECRET}"
    )
    assert (target.kind, target.service, target.db) == ("sentinel", "primary", 2)
    assert target.connection_kwargs() == {
        "ssl": True,
        "ssl_ca_certs": "/etc/ca.pem",
        "ssl_cert_reqs": "required",
        "username": "guard",
        "password": "s3cr@t",
    }
    assert target.sentinel_kwargs()["password"] == SENTINEL_SECRET
    assert target.sentinel_kwargs()["username"] is None
    assert target.host_list() == "10.0.0.1:26379,[::1]:26380"
    assert SENTINEL_SECRET not in repr(target) and "s3cr@t" not in repr(target)


@pytest.mark.parametrize(
    "url",
    [
        f"rediss+cluster://:{SECRET}@h:7000?ssl_ca_cert=/typo.pem",  # not silently dropped
        f"redis+cluster://:{SECRET}@h:7000?sentinel_password={SENTINEL_SECRET}",  # not a Sentinel
        f"redis+sentinel://:{SECRET}@h:26379/s?ssl_ca_certs=/ca.pem",  # TLS options need rediss+
        f"rediss+cluster://:{SECRET}@h:7000?ssl_cert_reqs=sometimes",
        f"rediss+sentinel://:{SECRET}@h:26379?sentinel_password={SENTINEL_SECRET}",  # no service
        f"redis+cluster://:{SECRET}@h",
    ],
)
def test_a_bad_url_is_refused_at_construction_without_its_secrets(url: str) -> None:
    for build in (lambda: RedisReplayStore(url), lambda: RateLimiter(storage=url)):
        with pytest.raises(ConfigurationError) as refused:
            build()
        assert SECRET not in str(refused.value) and "s3cr@t" not in str(refused.value)
        assert SENTINEL_SECRET not in str(refused.value)


def test_redacted_and_keyspace_drop_the_secrets() -> None:
    url = f"rediss+sentinel://guard:{SECRET}@h:26379/s?sentinel_password={SENTINEL_SECRET}&ssl_ca_certs=/ca"
    assert redacted(url) == "rediss+sentinel://guard:***@h:26379/s?sentinel_password=***&ssl_ca_certs=/ca"
    assert redacted(f"redis://:{SECRET}@h:6379/0") == "redis://:***@h:6379/0"
    assert keyspace_key(url) == "rediss+sentinel://h:26379/s?ssl_ca_certs=/ca"
