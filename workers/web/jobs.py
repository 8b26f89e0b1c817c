"""The web jobs' declarations (names, descriptions and default schedules from the seeds).

Their bodies land with the web extension issue; until then each reports a failure instead of
pretending to work.
"""

from sp_scheduler import Job, JobContext, JobResult

NOT_IMPLEMENTED = "not implemented yet"


class PublishPipeline(Job):
    name = "publish_pipeline"
    description = "Orchestrates the whole publishing workflow: ingest, prerender, sitemap, feeds, assets"
    schedule = "0 */15 * * * *"
    run_on_startup = True

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)


class ContentAnalyticsAggregation(Job):
    name = "content_analytics_aggregation"
    description = "Aggregates page views, unique visitors and time-on-page into per-content statistics"
    schedule = "0 */15 * * * *"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)


class DailyTrafficReport(Job):
    name = "daily_traffic_report"
    description = "Compiles traffic metrics and posts a summary to Discord"
    schedule = "0 0 7,19 * * *"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)


class DailyActivitySummary(Job):
    name = "daily_activity_summary"
    description = "Summarizes daily activity across all services and sends a Discord report"
    schedule = "0 0 18 * * *"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure(NOT_IMPLEMENTED)
