"""The web jobs, one module each; re-exported here for code that imported them from `workers.web.jobs`."""

from workers.web.analytics import ContentAnalyticsAggregation
from workers.web.pipeline import PublishPipeline
from workers.web.reports import DailyActivitySummary, DailyTrafficReport

__all__ = [
    "ContentAnalyticsAggregation",
    "DailyActivitySummary",
    "DailyTrafficReport",
    "PublishPipeline",
]
