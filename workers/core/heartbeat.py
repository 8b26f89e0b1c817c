"""The `heartbeat` job: a visible pulse showing the whole path (beat → Redis → worker → Postgres) works."""

from sp_scheduler import Job, JobContext, JobResult


class Heartbeat(Job):
    name = "heartbeat"
    description = "Records that the scheduler is alive; the dev profile runs it every second"
    schedule = ""  # manual only unless a profile schedules it (services/scheduler/profiles/dev.yaml does)
    parameters = ()  # takes none: any -p is refused

    async def execute(self, ctx: JobContext) -> JobResult:
        slot = ctx.scheduled_for.isoformat() if ctx.scheduled_for is not None else "none (manual run)"
        return JobResult.success().with_message(f"alive; scheduled for {slot}")
