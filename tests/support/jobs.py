"""A `testing` extension with jobs whose behaviour tests can predict: succeed, fail, raise, sleep, log, query."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from sp_scheduler import Extension, Job, JobContext, JobResult


class Noop(Job):
    name = "noop"
    description = "Does nothing, successfully"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.success().with_stats(1, 0).with_message("nothing to do")


class FailSoftly(Job):
    name = "fail_softly"
    description = "Returns a recoverable failure"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.failure("Database not available")


class Explode(Job):
    name = "explode"
    description = "Raises an exception"

    async def execute(self, ctx: JobContext) -> JobResult:
        raise RuntimeError("kaboom: the job blew up")


class Sleepy(Job):
    name = "sleepy"
    description = "Sleeps for the `seconds` parameter, then succeeds; writes a marker file when it starts"

    async def execute(self, ctx: JobContext) -> JobResult:
        marker = ctx.get_parameter("marker", "")
        if marker:
            Path(marker).write_text(f"{os.getpid()}\n")
        await asyncio.sleep(ctx.get_parameter("seconds", 1.0))
        return JobResult.success().with_message("rested")


class SlotJournal(Job):
    name = "slot_journal"
    description = "Appends its slot, pid and time to the `journal` file: executions recorded outside the ledger"

    async def execute(self, ctx: JobContext) -> JobResult:
        slot = ctx.scheduled_for.isoformat() if ctx.scheduled_for else "manual"
        with Path(ctx.get_parameter("journal")).open("a") as journal:  # one short append per run
            journal.write(f"{slot} {os.getpid()} {time.time():.3f}\n")
        return JobResult.success()


class BlockingSleepy(Job):
    name = "blocking_sleepy"
    description = "Blocks its event loop (time.sleep) for `seconds`: a badly behaved job"

    async def execute(self, ctx: JobContext) -> JobResult:
        time.sleep(ctx.get_parameter("seconds", 1.0))
        return JobResult.success()


class Stubborn(Job):
    name = "stubborn"
    description = "Blocks its event loop for `seconds` and swallows every exception meant to stop it"

    async def execute(self, ctx: JobContext) -> JobResult:
        deadline = time.monotonic() + ctx.get_parameter("seconds", 1.0)
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # the point of this job: it ignores Celery's soft time limit
                time.sleep(0.1)
        return JobResult.success()


class Chatty(Job):
    name = "chatty"
    description = "Logs through its context logger at several levels"

    async def execute(self, ctx: JobContext) -> JobResult:
        ctx.logger.info("counting items", extra={"count": 3})
        ctx.logger.warning("one item looks odd")
        ctx.logger.error("one item failed", extra={"item": "b"})
        return JobResult.success().with_stats(2, 1)


class Ticker(Job):
    name = "ticker"
    description = "Logs `tick N` every `interval` seconds, `count` times: a run whose lines arrive while it runs"

    async def execute(self, ctx: JobContext) -> JobResult:
        count = int(ctx.get_parameter("count", 10))
        for tick in range(count):
            ctx.logger.info("tick %d", tick)
            await asyncio.sleep(float(ctx.get_parameter("interval", 0.5)))
        return JobResult.success().with_stats(count, 0)


class CountRows(Job):
    name = "count_rows"
    description = "Queries the database through ctx.db_pool"

    async def execute(self, ctx: JobContext) -> JobResult:
        async with ctx.db_pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM sp_job_runs")
            row = await cur.fetchone()
        count = int(row[0]) if row else 0
        return JobResult.success().with_stats(count, 0).with_message(f"{count} runs in the ledger")


class Params(Job):
    name = "echo_params"
    description = "Reports its parameters in its message"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.success().with_message(",".join(f"{k}={v}" for k, v in sorted(ctx.parameters.items())))


class Startup(Job):
    name = "startup_marker"
    description = "Runs on startup"
    schedule = "0 0 0 1 1 *"
    run_on_startup = True

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.success()


class NulBytes(Job):
    name = "nul_bytes"
    description = "Reports and logs text with NUL characters, which Postgres text cannot hold"

    async def execute(self, ctx: JobContext) -> JobResult:
        ctx.logger.info("read a\x00b", extra={"raw": "c\x00d"})
        return JobResult.success().with_message("kept a\x00b")


class HugeCount(Job):
    name = "huge_count"
    description = "Reports more items than a bigint holds"

    async def execute(self, ctx: JobContext) -> JobResult:
        return JobResult.success().with_stats(10**20, 0)


class Tally(Job):
    name = "tally"
    description = "Queries through ctx.db_pool, then appends its run id to the file `path`: a record outside the ledger"

    async def execute(self, ctx: JobContext) -> JobResult:
        async with ctx.db_pool.connection() as conn:
            await conn.execute("SELECT 1")
        with Path(ctx.get_parameter("path", "")).open("a") as tally:
            tally.write(f"{ctx.run_id}\n")
        return JobResult.success().with_stats(1, 0)


class FailWhileFlag(Job):
    name = "fail_while_flag"
    description = "Fails while the file named by its `flag` parameter exists, succeeds otherwise"

    async def execute(self, ctx: JobContext) -> JobResult:
        flag = Path(str(ctx.get_parameter("flag", "")))
        if flag.name and flag.exists():
            return JobResult.failure(f"flag {flag.name} is up")
        return JobResult.success().with_message("flag is down")


extension = Extension(
    "testing",
    (
        Noop(),
        FailSoftly(),
        Explode(),
        Sleepy(),
        SlotJournal(),
        BlockingSleepy(),
        Stubborn(),
        Chatty(),
        Ticker(),
        CountRows(),
        Params(),
        Startup(),
        NulBytes(),
        HugeCount(),
        Tally(),
        FailWhileFlag(),
    ),
)

# For registry tests: a second extension that reuses a job name.
clashing = Extension("clash", (Noop(),))
NOT_AN_EXTENSION = object()
