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
    assert postgres_where("postgresql://u:pw@db.example:6543/app") == "db.example:6543/app"
    assert "a/b" not in postgres_where("postgresql://u:a/b@db/app")


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
