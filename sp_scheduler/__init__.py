"""sp-scheduler: a distributed cron scheduler for Python jobs, built on Celery, RedBeat and Postgres."""

from sp_scheduler.jobs import Extension, Job, JobContext, JobResult, PipelineStats, Trigger
from sp_scheduler.params import Param, ParamError

__all__ = ["Extension", "Job", "JobContext", "JobResult", "Param", "ParamError", "PipelineStats", "Trigger"]
__version__ = "0.1.0"
