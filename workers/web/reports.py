"""daily_traffic_report and daily_activity_summary: compile figures from Postgres, post them to Discord.

Both report on a window ending at the run's slot (or the `now` parameter) and `period_hours` long
(default 24), next to the window before it. The webhook URL comes from the environment variable
named by `webhook_env` (default SP_DISCORD_WEBHOOK_URL); without one the report is rendered into
the run's result and log, and the run succeeds: an unconfigured channel is not a failure.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from sp_scheduler import Job, JobContext, JobResult, Param
from sp_scheduler.run_status import FAILED_STATUSES
from workers.web.discord import (
    GREEN,
    ORANGE,
    RED,
    Embed,
    EmbedField,
    RetryPolicy,
    WebhookError,
    post_embed,
    webhook_host,
)
from workers.web.render import url_path

WEBHOOK_ENV = "SP_DISCORD_WEBHOOK_URL"
TOP_CONTENT = 5


@dataclass(frozen=True, slots=True)
class Window:
    """The period a report covers, (start, end], and the one before it."""

    end: datetime
    period: timedelta

    @property
    def start(self) -> datetime:
        return self.end - self.period

    @property
    def previous_start(self) -> datetime:
        return self.end - 2 * self.period

    @property
    def label(self) -> str:
        hours = int(self.period.total_seconds() // 3600)
        return f"last {hours} hours"

    def params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "previous_start": self.previous_start}

    @classmethod
    def from_context(cls, ctx: JobContext) -> Window:
        end: datetime = ctx.param("now") or ctx.scheduled_for or datetime.now(UTC)
        return cls(end.astimezone(UTC), timedelta(hours=ctx.param("period_hours")))


class DiscordReport(Job):
    """A report job: `compile` reads the database into an embed; delivery is shared."""

    @abstractmethod
    async def compile(self, conn: AsyncConnection[Any], window: Window) -> Embed:
        """The report for `window`."""

    parameters = (
        Param("now", "instant", None, "the window ends at this instant (default: the run's slot, else the clock)"),
        Param("period_hours", "int", 24, "length of the reported window", min=1, max=24 * 31),
        Param("webhook_env", "str", WEBHOOK_ENV, "environment variable holding the Discord webhook URL"),
        Param("max_attempts", "int", 5, "delivery attempts before the run fails", min=1, max=20),
        Param("retry_base_seconds", "float", 1.0, "first retry delay, doubled per attempt", min=0),
        Param("max_retry_after_seconds", "float", 60.0, "longest Retry-After the job honours", min=0),
    )

    async def execute(self, ctx: JobContext) -> JobResult:
        window = Window.from_context(ctx)
        env_name: str = ctx.param("webhook_env")
        policy = RetryPolicy(
            max_attempts=ctx.param("max_attempts"),
            backoff_base=ctx.param("retry_base_seconds"),
            max_retry_after=ctx.param("max_retry_after_seconds"),
        )
        async with ctx.db_pool.connection() as conn:
            embed = await self.compile(conn, window)
        url = os.environ.get(env_name, "").strip()
        text = embed.as_text()
        if not url:
            ctx.logger.info("report not posted: no webhook configured", extra={"webhook_env": env_name, "report": text})
            return JobResult.success().with_message(f"{env_name} is not set; report not posted:\n{text}")
        host = webhook_host(url)
        try:
            delivery = await post_embed(url, embed, logger=ctx.logger, policy=policy)
        except WebhookError as exc:
            ctx.logger.error("report not posted", extra={"host": host, "error": str(exc)})
            return JobResult.failure(f"report not posted to {host}: {exc}")
        return (
            JobResult.success()
            .with_stats(1, 0)
            .with_message(f"report posted to {host} in {delivery.attempts} attempt(s)")
        )


class DailyTrafficReport(DiscordReport):
    name = "daily_traffic_report"
    description = "Compiles traffic metrics and posts a summary to Discord"
    schedule = "0 0 7,19 * * *"

    async def compile(self, conn: AsyncConnection[Any], window: Window) -> Embed:
        async with conn.cursor(row_factory=dict_row) as cur:
            totals = await (await cur.execute(_TRAFFIC, window.params())).fetchone()
            top = await (await cur.execute(_TOP_CONTENT, {**window.params(), "limit": TOP_CONTENT})).fetchall()
        assert totals is not None
        lines = [
            f"{n}. {row['title']} ({_url_path(row)}): {row['views']} views, {row['visitors']} visitors"
            for n, row in enumerate(top, 1)
        ]
        return Embed(
            title=f"Traffic report: {window.label}",
            description=f"Up to {_when(window.end)}, compared with the {window.label.removeprefix('last ')} before.",
            timestamp=window.end,
            color=GREEN if totals["views"] >= totals["previous_views"] else ORANGE,
            fields=(
                EmbedField("Views", _with_change(totals["views"], totals["previous_views"]), inline=True),
                EmbedField("Visitors", _with_change(totals["visitors"], totals["previous_visitors"]), inline=True),
                EmbedField("Sessions", _with_change(totals["sessions"], totals["previous_sessions"]), inline=True),
                EmbedField("Avg. time on page", _duration(totals["avg_time_ms"]), inline=True),
                EmbedField("Top content", "\n".join(lines) or "No page views in this period."),
            ),
            footer="daily_traffic_report · sp-scheduler",
        )


class DailyActivitySummary(DiscordReport):
    name = "daily_activity_summary"
    description = "Summarizes daily activity across all services and sends a Discord report"
    schedule = "0 0 18 * * *"

    async def compile(self, conn: AsyncConnection[Any], window: Window) -> Embed:
        params = window.params()
        async with conn.cursor(row_factory=dict_row) as cur:
            runs = {r["status"]: r["runs"] for r in await (await cur.execute(_RUNS, params)).fetchall()}
            failing = await (await cur.execute(_FAILING_JOBS, params)).fetchall()
            users = await (await cur.execute(_USERS, params)).fetchone()
            sessions = await (await cur.execute(_SESSIONS, params)).fetchone()
            content = await (await cur.execute(_CONTENT, params)).fetchone()
            new_titles = await (await cur.execute(_NEW_CONTENT, params)).fetchall()
            other = await (await cur.execute(_OTHER, params)).fetchone()
        assert users is not None and sessions is not None and content is not None and other is not None
        failed = sum(runs.get(status, 0) for status in FAILED_STATUSES)
        run_line = ", ".join(f"{count} {status}" for status, count in sorted(runs.items())) or "no runs"
        failing_lines = "\n".join(f"{row['job_name']}: {row['runs']}" for row in failing)
        published = "\n".join(f"{row['title']} ({_url_path(row)})" for row in new_titles)
        return Embed(
            title=f"Activity summary: {window.label}",
            description=f"Everything the system did up to {_when(window.end)}.",
            timestamp=window.end,
            color=RED if failed else GREEN,
            fields=(
                EmbedField("Job runs", f"{sum(runs.values())} ({run_line})"),
                EmbedField("Failing jobs", failing_lines or "none"),
                EmbedField(
                    "Users",
                    f"{users['new_users']} new, {users['registered']} registered, {users['active']} active,"
                    f" {users['total']} in all",
                ),
                EmbedField(
                    "Sessions", f"{sessions['started']} started, {sessions['ended']} ended, {sessions['open']} open now"
                ),
                EmbedField(
                    "Content",
                    f"{content['published']} published, {content['updated']} updated, {content['live']} live"
                    + (f"\n{published}" if published else ""),
                ),
                EmbedField("Page views", str(other["views"]), inline=True),
                EmbedField("Errors logged", str(other["errors"]), inline=True),
            ),
            footer="daily_activity_summary · sp-scheduler",
        )


def _with_change(current: int, previous: int) -> str:
    """`120 (+20% vs previous)`: the change against the window before, or "new" when it had none."""
    if previous == 0:
        change = "no change" if current == 0 else "new"
    else:
        percent = round((current - previous) * 100 / previous)
        change = "no change" if percent == 0 else f"{percent:+d}%"
    return f"{current} ({change} vs previous)"


def _duration(ms: Any) -> str:
    if ms is None:
        return "-"
    seconds = round(float(ms) / 1000)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _url_path(row: dict[str, Any]) -> str:
    return url_path(row["slug"], row["kind"])


_TRAFFIC = """
SELECT count(*) FILTER (WHERE viewed_at > %(start)s) AS views,
       count(*) FILTER (WHERE viewed_at <= %(start)s) AS previous_views,
       count(DISTINCT visitor_id) FILTER (WHERE viewed_at > %(start)s) AS visitors,
       count(DISTINCT visitor_id) FILTER (WHERE viewed_at <= %(start)s) AS previous_visitors,
       count(DISTINCT session_id) FILTER (WHERE viewed_at > %(start)s) AS sessions,
       count(DISTINCT session_id) FILTER (WHERE viewed_at <= %(start)s) AS previous_sessions,
       avg(time_on_page_ms) FILTER (WHERE viewed_at > %(start)s) AS avg_time_ms
FROM engagement_events
WHERE viewed_at > %(previous_start)s AND viewed_at <= %(end)s
"""
_TOP_CONTENT = """
SELECT c.title, c.slug, c.kind, count(*) AS views, count(DISTINCT e.visitor_id) AS visitors
FROM engagement_events AS e JOIN content AS c ON c.id = e.content_id
WHERE e.viewed_at > %(start)s AND e.viewed_at <= %(end)s
GROUP BY c.id ORDER BY views DESC, visitors DESC, c.slug LIMIT %(limit)s
"""
_RUNS = """
SELECT status, count(*) AS runs FROM sp_job_runs
WHERE created_at > %(start)s AND created_at <= %(end)s GROUP BY status
"""
_FAILING_JOBS = """
SELECT job_name, count(*) AS runs FROM sp_job_runs
WHERE created_at > %(start)s AND created_at <= %(end)s AND status IN ('failed', 'timeout', 'lost')
GROUP BY job_name ORDER BY runs DESC, job_name LIMIT 10
"""
_USERS = """
SELECT count(*) FILTER (WHERE created_at > %(start)s AND created_at <= %(end)s) AS new_users,
       count(*) FILTER (WHERE NOT is_anonymous AND coalesce(upgraded_at, created_at) > %(start)s
                        AND coalesce(upgraded_at, created_at) <= %(end)s) AS registered,
       count(*) FILTER (WHERE last_seen_at > %(start)s AND last_seen_at <= %(end)s) AS active,
       count(*) AS total
FROM users
"""
_SESSIONS = """
SELECT count(*) FILTER (WHERE created_at > %(start)s AND created_at <= %(end)s) AS started,
       count(*) FILTER (WHERE ended_at > %(start)s AND ended_at <= %(end)s) AS ended,
       count(*) FILTER (WHERE ended_at IS NULL) AS open
FROM user_sessions
"""
# "Published" means new on the site in the period: published in it, or imported in it with an older date.
_NEW_IN_WINDOW = (
    "published AND ((published_at > %(start)s AND published_at <= %(end)s)"
    " OR (created_at > %(start)s AND created_at <= %(end)s))"
)
_CONTENT = f"""
SELECT count(*) FILTER (WHERE {_NEW_IN_WINDOW}) AS published,
       count(*) FILTER (WHERE updated_at > %(start)s AND updated_at <= %(end)s
                        AND created_at <= %(start)s AND NOT coalesce({_NEW_IN_WINDOW}, false)) AS updated,
       count(*) FILTER (WHERE published) AS live
FROM content
"""
_NEW_CONTENT = f"""
SELECT title, slug, kind FROM content WHERE {_NEW_IN_WINDOW}
ORDER BY coalesce(published_at, created_at) DESC, slug LIMIT 10
"""
_OTHER = """
SELECT (SELECT count(*) FROM engagement_events WHERE viewed_at > %(start)s AND viewed_at <= %(end)s) AS views,
       (SELECT count(*) FROM sp_logs
        WHERE levelno >= 40 AND created_at > %(start)s AND created_at <= %(end)s) AS errors
"""
