"""The one redaction helper: passwords masked in every URL form the project accepts."""

from __future__ import annotations

import pytest

from sp_scheduler.redact import (
    MASK,
    capability_secret,
    postgres_where,
    redact_capability,
    redact_text,
    redact_url,
    redis_problem,
    redis_where,
    secrets_of,
    url_host,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@cache:6380/2", f"redis://:{MASK}@cache:6380/2"),
        ("rediss://app:pw@cache/0", f"rediss://app:{MASK}@cache/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("postgresql://u:p%2Fw@db:5432/app", f"postgresql://u:{MASK}@db:5432/app"),
        ("postgresql://u:a/b@c@db/app", f"postgresql://u:{MASK}@db/app"),
        ("postgresql://u@db/app?password=pw&sslmode=require", f"postgresql://u@db/app?password={MASK}&sslmode=require"),
        (
            "redis+sentinel://:pw@h1:26379,h2:26379/mymaster?sentinel_password=spw",
            f"redis+sentinel://:{MASK}@h1:26379,h2:26379/mymaster?sentinel_password={MASK}",
        ),
        ("host=db password='a b' dbname=app", f"host=db password={MASK} dbname=app"),
        ("host=db password=pw dbname=app", f"host=db password={MASK} dbname=app"),
        ("user:pw@cache:6379", "<not a URL>"),
    ],
)
def test_redact_url_masks_every_password_form(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_masks_raw_and_percent_decoded_passwords() -> None:
    url = "postgresql://u:p%2Fw@db/app"
    assert set(secrets_of(url)) == {"p%2Fw", "p/w"}
    text = f"failed: {url} said p/w was wrong"
    assert redact_text(text, url) == f"failed: postgresql://u:{MASK}@db/app said {MASK} was wrong"


def test_where_forms_never_carry_the_password() -> None:
    assert redis_where("redis://:s3cret@cache.internal:6380/2") == "cache.internal:6380/2"
    assert redis_where("redis://redis") == "redis:6379/0"
    assert redis_where("redis://:pw@cache:notaport/0") == "<malformed Redis URL>"
    sentinel = "rediss+sentinel://app:s3cret@s1:26379,s2,[::1]:26380/mymaster/2?sentinel_password=s3cret2"
    assert redis_where(sentinel) == "mymaster/2 via Sentinel s1:26379,s2:26379,[::1]:26380"
    assert redis_where("redis+sentinel://:pw@s1:x/mymaster") == "<malformed Redis URL>"
    assert set(secrets_of(sentinel)) == {"s3cret", "s3cret2"}
    assert postgres_where("postgresql://u:pw@db.example:6543/app") == "db.example:6543/app"
    assert "a/b" not in postgres_where("postgresql://u:a/b@db/app")


def test_a_multi_host_url_names_every_server_in_order_and_no_password() -> None:
    url = "postgresql://app:s3cr%40t@db1:5432,db2:5433/ledger?target_session_attrs=read-write"
    assert postgres_where(url) == "db1:5432,db2:5433/ledger"
    assert redact_url(url) == f"postgresql://app:{MASK}@db1:5432,db2:5433/ledger?target_session_attrs=read-write"
    assert postgres_where("postgresql://app@db1,db2/ledger") == "db1:5432,db2:5432/ledger"
    assert postgres_where("postgresql://app@db1,db2/ledger?port=6432") == "db1:6432,db2:6432/ledger"
    assert postgres_where("host=db1,db2 port=5432,5433 dbname=ledger password=pw") == "db1:5432,db2:5433/ledger"


WEBHOOK = "https://discord.com/api/webhooks/123/s3cr3t-token?wait=true"


def test_a_webhook_shows_only_its_host() -> None:
    assert url_host(WEBHOOK) == "discord.com"
    assert url_host("not a url") == "?"
    assert url_host("http://[::1") == "?"  # unbalanced bracket: urllib raises, the host is unknown


def test_a_webhook_token_is_masked_in_quoted_text() -> None:
    text = f"POST {WEBHOOK} failed; path /api/webhooks/123/s3cr3t-token, query wait=true"
    masked = redact_capability(text, WEBHOOK)
    assert "s3cr3t" not in masked and "wait=true" not in masked
    assert masked == "POST <redacted> failed; path <redacted>, query <redacted>"
    assert capability_secret(WEBHOOK) == "/api/webhooks/123/s3cr3t-token"
    assert capability_secret("https://host") == "https://host"


def test_a_redis_problem_names_the_server_and_masks_the_password_the_error_quotes() -> None:
    url = "redis://:hunter2@cache:6380/1"
    error = ConnectionError(f"Error connecting to {url}: refused (password hunter2)")
    assert (
        redis_problem(url, error)
        == f"cannot reach Redis at cache:6380/1: Error connecting to {redact_url(url)}: refused (password {MASK})"
    )
    assert redis_problem(url, error, "cannot read heartbeats from").startswith(
        "cannot read heartbeats from Redis at cache:6380/1: "
    )


def test_a_response_quoting_the_token_alone_does_not_show_it() -> None:
    url = "https://hooks.example.com/services/T0001/B0002/abcdefghijkl0123456789"
    body = "invalid token abcdefghijkl0123456789 for team T0001"
    assert redact_capability(body, url) == "invalid token <redacted> for team T0001"
    assert redact_capability("no such hook tok", "https://h/hooks/tok") == "no such hook <redacted>"
