"""content_analytics_aggregation: fold engagement events into per-content metrics, incrementally.

Totals (views, unique visitors, time on page) are running sums: each run folds only the events
committed since the last watermark. The watermark is a transaction horizon: every event written
by a transaction older than it is committed or gone for good, so no event is skipped however long
its transaction took, and none is counted twice. A long write transaction in this database delays
folding (the result says how many events wait); it never loses events. The 7/30-day windows and the
trend depend on "now", so they are recomputed from the raw events of the last 30 days every run.
`full=true` rebuilds everything from scratch; both paths give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from sp_scheduler import Job, JobContext, JobResult, Param

WATERMARK = "content_analytics"

# Up/down thresholds as integer comparisons: views_7d > 1.2 * prior_21d / 3 <=> 5 * views_7d > 2 * prior_21d,
# and views_7d < 0.8 * prior_21d / 3 <=> 15 * views_7d < 4 * prior_21d.
TREND_SQL = "CASE WHEN 5 * {v7} > 2 * {prior} THEN 'up' WHEN 15 * {v7} < 4 * {prior} THEN 'down' ELSE 'flat' END"

_FOLD = """
WITH new AS (
    SELECT id, content_id, visitor_id, time_on_page_ms FROM engagement_events
    WHERE xact_id >= %(since)s::xid8 AND xact_id < %(horizon)s::xid8
), first_visits AS (
    INSERT INTO content_visitors (content_id, visitor_id)
    SELECT DISTINCT content_id, visitor_id FROM new
    ON CONFLICT DO NOTHING
    RETURNING content_id
), new_visitors AS (
    SELECT content_id, count(*) AS visitors FROM first_visits GROUP BY content_id
), per_content AS (
    SELECT content_id, count(*) AS views, count(time_on_page_ms) AS timed,
           coalesce(sum(time_on_page_ms), 0) AS time_sum
    FROM new GROUP BY content_id
), upserted AS (
    INSERT INTO content_metrics AS m
        (content_id, total_views, unique_visitors, timed_views, time_on_page_sum_ms, avg_time_on_page_ms)
    SELECT p.content_id, p.views, coalesce(v.visitors, 0), p.timed, p.time_sum,
           CASE WHEN p.timed > 0 THEN round(p.time_sum::numeric / p.timed) END
    FROM per_content AS p LEFT JOIN new_visitors AS v USING (content_id)
    ON CONFLICT (content_id) DO UPDATE SET
        total_views = m.total_views + excluded.total_views,
        unique_visitors = m.unique_visitors + excluded.unique_visitors,
        timed_views = m.timed_views + excluded.timed_views,
        time_on_page_sum_ms = m.time_on_page_sum_ms + excluded.time_on_page_sum_ms,
        avg_time_on_page_ms = CASE WHEN m.timed_views + excluded.timed_views > 0 THEN
            round((m.time_on_page_sum_ms + excluded.time_on_page_sum_ms)::numeric
                  / (m.timed_views + excluded.timed_views)) END,
        updated_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM new), (SELECT max(id) FROM new), (SELECT count(*) FROM upserted)
"""

_ELSEWHERE = """
SELECT backend_xid::text FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
UNION ALL
SELECT transaction::text FROM pg_prepared_xacts WHERE database <> current_database()
"""

_WINDOWS = f"""
WITH windowed AS (
    SELECT content_id,
           count(*) FILTER (WHERE viewed_at > %(now)s - interval '7 days') AS v7,
           count(*) AS v30,
           count(*) FILTER (WHERE viewed_at > %(now)s - interval '28 days'
                            AND viewed_at <= %(now)s - interval '7 days') AS prior
    FROM engagement_events
    WHERE viewed_at > %(now)s - interval '30 days' AND viewed_at <= %(now)s AND xact_id < %(horizon)s::xid8
    GROUP BY content_id
), targets AS (
    SELECT content_id FROM windowed
    UNION
    SELECT content_id FROM content_metrics WHERE views_30d > 0
), figures AS (
    SELECT t.content_id, coalesce(w.v7, 0) AS v7, coalesce(w.v30, 0) AS v30,
           {TREND_SQL.format(v7="coalesce(w.v7, 0)", prior="coalesce(w.prior, 0)")} AS trend
    FROM targets AS t LEFT JOIN windowed AS w USING (content_id)
)
UPDATE content_metrics AS m SET views_7d = f.v7, views_30d = f.v30, trend = f.trend, updated_at = now()
FROM figures AS f
WHERE m.content_id = f.content_id AND (m.views_7d, m.views_30d, m.trend) IS DISTINCT FROM (f.v7, f.v30, f.trend)
"""


@dataclass(frozen=True, slots=True)
class FoldOutcome:
    """What one aggregation did."""

    events: int
    content_updated: int
    windows_changed: int
    last_event_id: int
    full: bool
    waiting: int  # committed events left for the next run: a transaction older than theirs is still open


async def aggregate(conn: AsyncConnection[Any], *, now: datetime | None, full: bool, name: str) -> FoldOutcome:
    """One transaction: take the horizon, lock the watermark, fold new events, refresh the windows."""
    async with conn.transaction():
        horizon = await transaction_horizon(conn)  # first, before this transaction has an id of its own
        await conn.execute("INSERT INTO analytics_watermarks (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))
        # Serialises concurrent aggregations: the second one waits, then folds only what is left.
        cur = await conn.execute(
            "SELECT last_xact_id::text, last_event_id FROM analytics_watermarks WHERE name = %s FOR UPDATE", (name,)
        )
        mark = await cur.fetchone()
        assert mark is not None
        since, last_event_id = (0, 0) if full else (int(mark[0]), int(mark[1]))
        if full:
            await conn.execute("DELETE FROM content_metrics")
            await conn.execute("DELETE FROM content_visitors")
        horizon = max(horizon, since)  # a concurrent run may already have gone past our horizon
        bounds = {"since": str(since), "horizon": str(horizon)}
        cur = await conn.execute(_FOLD, bounds)
        events, max_id, updated = await cur.fetchone() or (0, None, 0)
        if now is None:
            now = await _scalar(conn, "SELECT now()")
        windows_changed = (await conn.execute(_WINDOWS, {**bounds, "now": now})).rowcount
        last_event_id = max(last_event_id, int(max_id or 0))
        await conn.execute(
            "UPDATE analytics_watermarks SET last_xact_id = %s::xid8, last_event_id = %s,"
            " events_folded = CASE WHEN %s THEN %s ELSE events_folded + %s END, updated_at = now() WHERE name = %s",
            (str(horizon), last_event_id, full, events, events, name),
        )
        waiting = await _scalar(conn, "SELECT count(*) FROM engagement_events WHERE xact_id >= %s::xid8", str(horizon))
    return FoldOutcome(int(events), int(updated), windows_changed, last_event_id, full, int(waiting))


async def transaction_horizon(conn: AsyncConnection[Any]) -> int:
    """The oldest transaction id of this database that may still commit; every older one is settled.

    The server's own horizon (the snapshot's xmin) counts transactions in every database, so a long
    batch job elsewhere on a shared server would hold the analytics back. Transactions the activity
    view places in another database are left out; an id it cannot place counts as ours (safe side).
    """
    snapshot = str(await _scalar(conn, "SELECT pg_current_snapshot()::text"))
    _, xmax, xip = snapshot.split(":")
    running = [int(xid) for xid in xip.split(",") if xid]
    if not running:
        return int(xmax)
    cur = await conn.execute(_ELSEWHERE)  # read after the snapshot: a transaction that ended since counts as ours
    elsewhere = {int(row[0]) for row in await cur.fetchall()}
    ours = [xid for xid in running if xid % 2**32 not in elsewhere]  # the views show 32-bit ids
    return min(ours) if ours else int(xmax)


async def _scalar(conn: AsyncConnection[Any], query: str, *params: Any) -> Any:
    row = await (await conn.execute(query, params or None)).fetchone()
    assert row is not None
    return row[0]


class ContentAnalyticsAggregation(Job):
    name = "content_analytics_aggregation"
    description = "Aggregates page views, unique visitors and time-on-page into per-content statistics"
    schedule = "0 */15 * * * *"
    parameters = (
        Param("now", "instant", None, "compute the 7/30-day windows as of this instant (default: the clock)"),
        Param("full", "bool", False, "recompute every total from the raw events"),
        Param("watermark", "str", WATERMARK, "name of the watermark row the incremental fold resumes from"),
    )

    async def execute(self, ctx: JobContext) -> JobResult:
        now: datetime | None = ctx.param("now")
        full: bool = ctx.param("full")
        name: str = ctx.param("watermark")
        async with ctx.db_pool.connection() as conn:
            outcome = await aggregate(conn, now=now, full=full, name=name)
        ctx.logger.info(
            "analytics aggregated",
            extra={
                "events": outcome.events,
                "content_updated": outcome.content_updated,
                "windows_changed": outcome.windows_changed,
                "last_event_id": outcome.last_event_id,
                "full": outcome.full,
                "waiting": outcome.waiting,
            },
        )
        mode = "recomputed from scratch" if full else "folded"
        return (
            JobResult.success()
            .with_stats(outcome.events, 0)
            .with_message(
                f"{mode} {outcome.events} event(s) into {outcome.content_updated} content item(s); "
                f"windows changed for {outcome.windows_changed}"
                + (f"; {outcome.waiting} newer event(s) wait for an older open transaction" if outcome.waiting else "")
            )
        )
