-- 0001: the runs ledger, job state overrides and the logs table.
-- Every table is prefixed sp_ so it never collides with the host application's tables.

-- One row per run or per slot that did not run (rq: one record per run). Scheduled slots get a
-- deterministic id (arq: job name + instant); the partial unique index below makes "a slot delivered
-- twice runs once" a database constraint rather than a hope.
CREATE TABLE sp_job_runs (
    id               uuid        PRIMARY KEY,
    job_name         text        NOT NULL,
    trigger          text        NOT NULL CHECK (trigger IN ('schedule', 'startup', 'manual')),
    scheduled_for    timestamptz,            -- the slot; NULL for manual runs
    enqueued_at      timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    status           text        NOT NULL CHECK (
                         status IN ('queued', 'running', 'succeeded', 'failed', 'timeout', 'lost', 'skipped', 'missed')
                     ),
    message          text,
    items_processed  bigint      NOT NULL DEFAULT 0,
    items_failed     bigint      NOT NULL DEFAULT 0,
    duration_ms      bigint,
    error            text,
    traceback        text,
    worker           text,                   -- hostname/pid of the worker that claimed it
    attempt          integer     NOT NULL DEFAULT 1,
    lease_expires_at timestamptz,            -- heartbeat lease while running; past it the run is lost
    params           jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- A scheduled run without its slot would escape the slot constraint (NULLs never conflict).
    CONSTRAINT sp_job_runs_schedule_has_slot CHECK (trigger <> 'schedule' OR scheduled_for IS NOT NULL)
);

-- The slot constraint.
CREATE UNIQUE INDEX sp_job_runs_slot_key ON sp_job_runs (job_name, scheduled_for) WHERE trigger = 'schedule';

-- History stays fast with millions of rows: newest first, overall, per job, per status, per job and status.
CREATE INDEX sp_job_runs_created_idx ON sp_job_runs (created_at DESC);
CREATE INDEX sp_job_runs_job_created_idx ON sp_job_runs (job_name, created_at DESC);
CREATE INDEX sp_job_runs_status_created_idx ON sp_job_runs (status, created_at DESC);
CREATE INDEX sp_job_runs_job_status_created_idx ON sp_job_runs (job_name, status, created_at DESC);
-- The reaper and the overlap check only look at running rows.
CREATE INDEX sp_job_runs_running_lease_idx ON sp_job_runs (lease_expires_at) WHERE status = 'running';

-- Enable/disable overrides from the CLI: who, when and why, applied on top of the YAML.
CREATE TABLE sp_job_state (
    job_name   text        PRIMARY KEY,
    enabled    boolean     NOT NULL,
    reason     text,
    actor      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Log lines from jobs and processes.
CREATE TABLE sp_logs (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    level      text        NOT NULL,
    -- Level ordering for `--level` filters: Python's numbers (DEBUG 10 < INFO 20 < WARNING 30 < ERROR 40
    -- < CRITICAL 50), derived here so writers cannot get it wrong. Names Python does not define (custom
    -- levels) rank as INFO so they stay visible under the default filter.
    levelno    smallint    NOT NULL GENERATED ALWAYS AS (
                   CASE upper(level)
                       WHEN 'DEBUG' THEN 10
                       WHEN 'INFO' THEN 20
                       WHEN 'WARNING' THEN 30
                       WHEN 'WARN' THEN 30
                       WHEN 'ERROR' THEN 40
                       WHEN 'CRITICAL' THEN 50
                       WHEN 'FATAL' THEN 50
                       WHEN 'NOTSET' THEN 0
                       ELSE 20
                   END
               ) STORED,
    logger     text        NOT NULL,
    message    text        NOT NULL,
    job_name   text,
    run_id     uuid,
    fields     jsonb       NOT NULL DEFAULT '{}'
);

CREATE INDEX sp_logs_created_idx ON sp_logs (created_at);
CREATE INDEX sp_logs_job_created_idx ON sp_logs (job_name, created_at);
CREATE INDEX sp_logs_run_idx ON sp_logs (run_id);
