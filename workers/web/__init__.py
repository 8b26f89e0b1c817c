"""The `web` extension: content publishing, analytics aggregation and reports."""

from sp_scheduler import Extension
from workers.web.jobs import (
    ContentAnalyticsAggregation,
    DailyActivitySummary,
    DailyTrafficReport,
    PublishPipeline,
)

extension = Extension(
    name="web",
    job_list=(
        PublishPipeline(),
        ContentAnalyticsAggregation(),
        DailyTrafficReport(),
        DailyActivitySummary(),
    ),
)
