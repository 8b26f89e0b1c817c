"""content_analytics_aggregation: incremental folds agree with a straightforward recompute from the events."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import System

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
JOB = "content_analytics_aggregation"

# The definition, spelled out the plain way: every event ever, windows ending at `now`.
RECOMPUTE = """
SELECT content_id::text,
       count(*) AS total_views,
       count(DISTINCT visitor_id) AS unique_visitors,
       round(avg(time_on_page_ms))::int AS avg_time_on_page_ms,
       count(*) FILTER (WHERE viewed_at > %(now)s - interval '7 days' AND viewed_at <= %(now)s) AS views_7d,
       count(*) FILTER (WHERE viewed_at > %(now)s - interval '30 days' AND viewed_at <= %(now)s) AS views_30d,
       count(*) FILTER (WHERE viewed_at > %(now)s - interval '28 days'
                        AND viewed_at <= %(now)s - interval '7 days') AS prior_21d
FROM engagement_events GROUP BY content_id ORDER BY content_id
"""
STORED = """
SELECT content_id::text, total_views, unique_visitors, avg_time_on_page_ms, views_7d, views_30d, trend
FROM content_metrics ORDER BY content_id
"""


@pytest.fixture(autouse=True)
def _configured(system: System) -> None:
    system.configure([{"name": JOB, "extension": "web", "job": JOB, "schedule": "", "enabled": True}])


def expected(conn: psycopg.Connection[Any], now: datetime) -> list[tuple[Any, ...]]:
    rows = conn.execute(RECOMPUTE, {"now": now}).fetchall()
    return [(*row[:6], trend(row[4], row[6])) for row in rows]


def trend(last_7d: int, prior_21d: int) -> str:
    weekly = Fraction(prior_21d, 3)
    if last_7d > Fraction(6, 5) * weekly:
        return "up"
    if last_7d < Fraction(4, 5) * weekly:
        return "down"
    return "flat"


def stored(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(STORED).fetchall()]


def add_content(conn: psycopg.Connection[Any], count: int) -> list[str]:
    return [
        conn.execute(
            "INSERT INTO content (slug, title, body, content_hash) VALUES (%s, %s, '', 'x') RETURNING id::text",
            (f"page-{random.getrandbits(32):08x}", f"Page {n}"),
        ).fetchone()[0]  # type: ignore[index]
        for n in range(count)
    ]


def add_events(
    conn: psycopg.Connection[Any], content: list[str], count: int, rng: random.Random, now: datetime
) -> None:
    """Views spread over 40 days before `now` (and a few after), skewed so trends go every way."""
    rows = []
    for _ in range(count):
        index = rng.randrange(len(content))
        # Content 0 is getting hotter, content 1 cooler, the rest are steady.
        age_days = {0: rng.triangular(0, 40, 0), 1: rng.triangular(0, 40, 40)}.get(index, rng.uniform(0, 40))
        viewed_at = now - timedelta(days=age_days) + timedelta(hours=rng.choice([0, 0, 0, 0, 0, 0, 0, 0, 0, 30]))
        rows.append(
            (
                content[index],
                f"s{rng.randrange(200)}",
                f"v{rng.randrange(60)}",
                viewed_at,
                None if rng.random() < 0.2 else rng.randrange(0, 300_000),
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO engagement_events (content_id, session_id, visitor_id, viewed_at, time_on_page_ms)"
            " VALUES (%s, %s, %s, %s, %s)",
            rows,
        )


def aggregate(system: System, *params: str) -> dict[str, Any]:
    args = [arg for param in params for arg in ("-p", param)]
    result = system.cli("jobs", "run", JOB, "--local", "--json", *args)
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["status"] == "succeeded", record
    return dict(record)


def test_incremental_folds_match_a_recompute_from_scratch(system: System) -> None:
    rng = random.Random(20250301)
    now = f"now={NOW.isoformat()}"
    with psycopg.connect(system.database_url, autocommit=True) as conn:
        content = add_content(conn, 5)
        add_events(conn, content, 600, rng, NOW)
        assert aggregate(system, now)["items_processed"] == 600
        assert stored(conn) == expected(conn, NOW)
        assert {row[6] for row in stored(conn)} == {"up", "down", "flat"}, "the data exercises every trend"

        assert aggregate(system, now)["items_processed"] == 0, "nothing new, nothing folded"
        assert stored(conn) == expected(conn, NOW)

        content += add_content(conn, 2)
        add_events(conn, content, 400, rng, NOW)
        assert aggregate(system, now)["items_processed"] == 400, "only the events since the watermark"
        assert stored(conn) == expected(conn, NOW)
        incremental = stored(conn)

        later = NOW + timedelta(days=9)
        aggregate(system, f"now={later.isoformat()}")
        assert stored(conn) == expected(conn, later), "windows move with time, without new events"

        assert aggregate(system, "full=true", now)["items_processed"] == 1000
        assert stored(conn) == incremental == expected(conn, NOW)
        mark = conn.execute("SELECT events_folded, last_event_id FROM analytics_watermarks").fetchone()
        assert mark == (1000, conn.execute("SELECT max(id) FROM engagement_events").fetchone()[0])  # type: ignore[index]


def test_an_event_committed_late_is_not_skipped(system: System, postgres_url: str) -> None:
    """Ids are handed out before commit: an event with a lower id may commit after a fold saw a higher one."""
    now = f"now={NOW.isoformat()}"
    insert = (
        "INSERT INTO engagement_events (content_id, session_id, visitor_id, viewed_at, time_on_page_ms)"
        " VALUES (%s, 's', %s, %s, 1000) RETURNING id"
    )
    with (
        psycopg.connect(system.database_url, autocommit=True) as conn,
        psycopg.connect(postgres_url) as elsewhere,  # a long write transaction in another database
        psycopg.connect(system.database_url) as slow,  # and one in this database, open as the fold runs
    ):
        elsewhere.execute("SELECT pg_current_xact_id()")
        (content,) = add_content(conn, 1)
        slow_id = slow.execute(insert, (content, "slow", NOW)).fetchone()[0]  # type: ignore[index]
        fast_id = conn.execute(insert, (content, "fast", NOW)).fetchone()[0]  # type: ignore[index]
        assert slow_id < fast_id

        record = aggregate(system, now)  # must neither block on nor lose the open transaction's event
        assert stored(conn) == [], "both wait: the committed event's transaction is newer than the open one"
        assert record["message"].endswith("; 1 newer event(s) wait for an older open transaction")

        slow.commit()
        assert aggregate(system, now)["items_processed"] == 2, "the other database's transaction holds nothing up"
        assert stored(conn) == expected(conn, NOW)
        assert stored(conn)[0][1:3] == (2, 2)
