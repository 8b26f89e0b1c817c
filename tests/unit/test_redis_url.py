"""The one reading of a Redis URL: Sentinel URLs parsed into hosts, master, db and credentials, and
turned consistently into kombu's and RedBeat's Sentinel settings; bad ones named in one line."""

from __future__ import annotations

import ssl

import pytest

from sp_scheduler.celery_app import configured_app
from sp_scheduler.errors import UsageError
from sp_scheduler.redis_clients import redis_client
from sp_scheduler.redis_url import (
    SentinelUrl,
    celery_broker,
    is_sentinel_url,
    parse_sentinel_url,
    redbeat_settings,
)
from sp_scheduler.settings import Settings, check_redis_url

FULL = "rediss+sentinel://app:s3cr%2Ft@h1:26379,h2,[::1]:26380/mymaster/2?sentinel_password=sp%40ss"


def test_a_sentinel_url_names_its_hosts_master_db_and_credentials() -> None:
    assert parse_sentinel_url(FULL) == SentinelUrl(
        hosts=(("h1", 26379), ("h2", 26379), ("::1", 26380)),
        master_name="mymaster",
        db=2,
        username="app",
        password="s3cr/t",
        sentinel_password="sp@ss",
        tls=True,
    )
    plain = parse_sentinel_url("redis+sentinel://10.0.0.1:5000/cache")
    assert (plain.hosts, plain.master_name, plain.db, plain.password, plain.tls) == (
        (("10.0.0.1", 5000),),
        "cache",
        0,
        None,
        False,
    )
    assert parse_sentinel_url("redis+sentinel://:pw@h:1/m").password == "pw"


def test_only_the_sentinel_schemes_are_sentinel_urls() -> None:
    assert is_sentinel_url("redis+sentinel://h:1/m") and is_sentinel_url("REDISS+SENTINEL://h:1/m")
    assert not is_sentinel_url("redis://h:6379/0") and not is_sentinel_url("unix:///tmp/r.sock")


def test_kombu_gets_one_sentinel_url_per_host_and_the_master_name() -> None:
    broker, options, use_ssl = celery_broker(FULL, socket_connect_timeout=5)
    assert broker == (
        "sentinel://app:s3cr%2Ft@h1:26379/2;sentinel://app:s3cr%2Ft@h2:26379/2;sentinel://app:s3cr%2Ft@[::1]:26380/2"
    )
    assert options == {
        "master_name": "mymaster",
        "sentinel_kwargs": {
            "socket_connect_timeout": 5,
            "password": "sp@ss",
            "ssl": True,
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
        },
    }
    assert use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert celery_broker("redis://h:6379/0") == ("redis://h:6379/0", {}, None)


def test_a_bare_rediss_url_still_gives_kombu_tls_and_the_urls_own_ssl_options_win() -> None:
    assert celery_broker("rediss://h:6380/0") == ("rediss://h:6380/0", {}, {"ssl_cert_reqs": ssl.CERT_REQUIRED})
    bare = configured_app(Settings(redis_url="rediss://:pw@h:6380/0")).connection_for_write()
    assert bare.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    query = configured_app(Settings(redis_url="rediss://h:6380/0?ssl_ca_certs=/ca.pem")).connection_for_write()
    assert query.ssl == {"ssl_ca_certs": "/ca.pem"}  # redis-py then requires a certificate, its default


def test_redbeat_gets_its_sentinel_form() -> None:
    url, options, use_ssl = redbeat_settings("redis+sentinel://u:pw@h1:1,h2:2/mymaster/3", socket_timeout=5.0)
    assert url == "redis-sentinel://" and use_ssl is None
    assert options == {
        "sentinels": [("h1", 1), ("h2", 2)],
        "service_name": "mymaster",
        "db": 3,
        "sentinel_kwargs": {"socket_timeout": 5.0},
        "username": "u",
        "password": "pw",
    }
    assert redbeat_settings("redis://h/0") == ("redis://h/0", {}, None)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h1:26379", "no master name"),
        ("redis+sentinel://h1:26379/", "no master name"),
        ("redis+sentinel:///mymaster", "no Sentinel host"),
        ("redis+sentinel://h1,,h2/mymaster", "no Sentinel host"),
        ("redis+sentinel://h1:notaport/mymaster", "Sentinel host 1 has a bad port"),
        ("redis+sentinel://h1:1,h2:70000/mymaster", "Sentinel host 2 has a bad port"),
        ("redis+sentinel://h1:1/mymaster/zero", "must be a database number"),
        ("redis+sentinel://h1:1/mymaster?password=x", "unknown query parameter 'password'"),
        ("redis+sentinel://h1:1/mymaster?ssl_ca_certs=/ca.pem", "'ssl_ca_certs' needs TLS: use rediss+sentinel://"),
        ("rediss+sentinel://h1:1/m?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of required, optional, none"),
    ],
)
def test_a_bad_sentinel_url_is_one_line_naming_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_redis_url(url)
    message = str(caught.value)
    assert problem in message and "SP_REDIS_URL / --redis-url" in message and "\n" not in message


def test_a_bad_sentinel_url_never_echoes_its_password() -> None:
    # An unescaped "/" in the password cuts the host list short: the port error must not quote it.
    for url in ("redis+sentinel://u:zq9/xk7@h1:1/m", "redis+sentinel://u:zq9:xk7@h1:x1/m?sentinel_password=xk7zq9"):
        with pytest.raises(UsageError) as caught:
            check_redis_url(url)
        assert "zq9" not in str(caught.value) and "xk7" not in str(caught.value)


def test_good_urls_pass_unchanged() -> None:
    for url in (FULL, "redis+sentinel://h:26379/m", "redis://:pw@h:6379/0", "unix:///tmp/redis.sock"):
        assert check_redis_url(url) == url


def test_a_sentinel_url_configures_the_guarded_sentinel_transport_and_redbeat() -> None:
    app = configured_app(Settings(redis_url="redis+sentinel://:pw@s1:26379,s2:26380/mymaster/1?sentinel_password=spw"))
    conf = app.conf
    assert conf.broker_url == "sentinel://:pw@s1:26379/1;sentinel://:pw@s2:26380/1"
    assert conf.broker_transport == "sp_scheduler.queue_guard:GuardedSentinelTransport"
    options = conf.broker_transport_options
    assert options["master_name"] == "mymaster" and options["sentinel_kwargs"]["password"] == "spw"
    assert options["visibility_timeout"] > 0  # the plain transport's options stay
    assert conf.redbeat_redis_url == "redis-sentinel://"
    assert conf.redbeat_redis_options["sentinels"] == [("s1", 26379), ("s2", 26380)]
    assert conf.redbeat_redis_options["service_name"] == "mymaster" and conf.redbeat_redis_options["db"] == 1
    plain = configured_app(Settings(redis_url="redis://h:6379/0")).conf
    assert plain.broker_url == "redis://h:6379/0" and plain.redbeat_redis_url == "redis://h:6379/0"
    assert plain.broker_transport == "sp_scheduler.queue_guard:GuardedTransport"


ACL_TLS = (
    "rediss+sentinel://app:pw@h1:1,h2:2/mymaster/0"
    "?sentinel_username=watcher&sentinel_password=spw&ssl_ca_certs=/etc/ca.pem"
    "&ssl_certfile=/etc/client.pem&ssl_keyfile=/etc/client.key&ssl_cert_reqs=optional"
)
TLS_OPTIONS = {
    "ssl_cert_reqs": ssl.CERT_OPTIONAL,
    "ssl_ca_certs": "/etc/ca.pem",
    "ssl_certfile": "/etc/client.pem",
    "ssl_keyfile": "/etc/client.key",
}


def test_the_sentinels_acl_user_and_the_tls_files_are_read_from_the_query() -> None:
    target = parse_sentinel_url(ACL_TLS)
    assert (target.username, target.password) == ("app", "pw")
    assert (target.sentinel_username, target.sentinel_password) == ("watcher", "spw")
    assert target.ssl_options() == TLS_OPTIONS
    assert parse_sentinel_url("rediss+sentinel://h:1/m").ssl_options() == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_the_sentinels_user_and_tls_reach_kombu_redbeat_and_redis_py_alike() -> None:
    sentinels = {"socket_timeout": 5.0, "username": "watcher", "password": "spw", "ssl": True, **TLS_OPTIONS}
    _, broker_options, broker_ssl = celery_broker(ACL_TLS, socket_timeout=5.0)
    assert broker_options["sentinel_kwargs"] == sentinels and broker_ssl == TLS_OPTIONS
    _, redbeat_options, redbeat_ssl = redbeat_settings(ACL_TLS, socket_timeout=5.0)
    assert redbeat_options["sentinel_kwargs"] == sentinels and redbeat_ssl == TLS_OPTIONS
    assert (redbeat_options["username"], redbeat_options["password"]) == ("app", "pw")
    target = parse_sentinel_url(ACL_TLS)
    assert target.master_kwargs() == {"db": 0, "username": "app", "password": "pw", "ssl": True, **TLS_OPTIONS}


def test_beats_and_the_clis_redis_py_client_asks_the_sentinels_as_their_acl_user_over_tls() -> None:
    client = redis_client(ACL_TLS, socket_timeout=5.0)
    pool = client.connection_pool
    assert pool.connection_kwargs["username"] == "app" and pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    for node in pool.sentinel_manager.sentinels:
        kwargs = node.connection_pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == ("watcher", "spw", "/etc/ca.pem")
        assert node.connection_pool.connection_class.__name__ == "SSLConnection"


def test_the_configured_app_hands_the_sentinel_user_and_tls_to_the_broker_and_redbeat() -> None:
    conf = configured_app(Settings(redis_url=ACL_TLS)).conf
    assert conf.broker_use_ssl == TLS_OPTIONS and conf.redbeat_redis_use_ssl == TLS_OPTIONS
    assert conf.broker_transport_options["sentinel_kwargs"]["username"] == "watcher"
    assert conf.redbeat_redis_options["sentinel_kwargs"]["username"] == "watcher"
