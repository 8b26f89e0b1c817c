-- 0009: sp_job_runs and sp_logs become range-partitioned by time, so retention drops whole partitions
-- instead of deleting rows (sp_scheduler/store/partitions.py, retention.py; docs/decisions.md,
-- "Retention by partition"). The rows move in this one transaction; nothing is lost.
--
-- sp_job_runs is partitioned by partition_at: the slot (scheduled_for) for a scheduled run, the insert
-- time for every other row. A unique index on a partitioned table must hold the partition key, so the
-- slot index is (job_name, scheduled_for, partition_at): for a scheduled row partition_at equals its
-- slot (the CHECK below), so every claim of one slot lands in the same partition, whatever boundary is
-- near, and that partition's index decides as before. The primary key is (id, partition_at); an id is
-- made unique by its maker: a slot's id is derived from (job, slot), so it lives in its slot's one
-- partition, and sp_claim_run inserts any other id under a lock on that id after looking it up.
-- Weekly partitions (and a DEFAULT one for rows outside them) are created by store/partitions.py.

-- The functions return sp_job_runs rows; they are re-created from store/sql/functions.sql right after.
DROP FUNCTION IF EXISTS sp_claim_run_after;
DROP FUNCTION IF EXISTS sp_claim_run;
DROP FUNCTION IF EXISTS sp_finish_runs;

ALTER TABLE sp_job_runs RENAME TO sp_job_runs_unpartitioned;

CREATE TABLE sp_job_runs (
    id               uuid        NOT NULL,
    job_name         text        NOT NULL,
    trigger          text        NOT NULL CONSTRAINT sp_job_runs_trigger_check
                                 CHECK (trigger IN ('schedule', 'startup', 'manual')),
    scheduled_for    timestamptz,
    enqueued_at      timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    status           text        NOT NULL CONSTRAINT sp_job_runs_status_check CHECK (
                         status IN ('queued', 'running', 'succeeded', 'failed', 'timeout', 'lost', 'skipped', 'missed')
                     ),
    message          text,
    items_processed  bigint      NOT NULL DEFAULT 0,
    items_failed     bigint      NOT NULL DEFAULT 0,
    duration_ms      bigint,
    error            text,
    traceback        text,
    worker           text,
    attempt          integer     NOT NULL DEFAULT 1,
    lease_expires_at timestamptz,
    params           jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The partition key: the slot of a scheduled run, else the insert time (the default).
    partition_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT sp_job_runs_schedule_has_slot CHECK (trigger <> 'schedule' OR scheduled_for IS NOT NULL),
    -- What keeps "one run per slot" a constraint: all rows of one slot share one partition.
    CONSTRAINT sp_job_runs_slot_is_partition_key CHECK (trigger <> 'schedule' OR partition_at = scheduled_for)
) PARTITION BY RANGE (partition_at);

CREATE TABLE sp_job_runs_default PARTITION OF sp_job_runs DEFAULT;

INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, enqueued_at, started_at, finished_at, status, message,
                         items_processed, items_failed, duration_ms, error, traceback, worker, attempt,
                         lease_expires_at, params, created_at, partition_at)
SELECT id, job_name, trigger, scheduled_for, enqueued_at, started_at, finished_at, status, message,
       items_processed, items_failed, duration_ms, error, traceback, worker, attempt,
       lease_expires_at, params, created_at, CASE WHEN trigger = 'schedule' THEN scheduled_for ELSE created_at END
  FROM sp_job_runs_unpartitioned;

DROP TABLE sp_job_runs_unpartitioned;

ALTER TABLE sp_job_runs ADD CONSTRAINT sp_job_runs_pkey PRIMARY KEY (id, partition_at);
CREATE UNIQUE INDEX sp_job_runs_slot_key ON sp_job_runs (job_name, scheduled_for, partition_at) WHERE trigger = 'schedule';
CREATE INDEX sp_job_runs_created_idx ON sp_job_runs (created_at DESC);
CREATE INDEX sp_job_runs_job_created_idx ON sp_job_runs (job_name, created_at DESC);
CREATE INDEX sp_job_runs_status_created_idx ON sp_job_runs (status, created_at DESC);
CREATE INDEX sp_job_runs_job_status_created_idx ON sp_job_runs (job_name, status, created_at DESC);
CREATE INDEX sp_job_runs_running_lease_idx ON sp_job_runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX sp_job_runs_queued_idx ON sp_job_runs (enqueued_at) WHERE status = 'queued';

-- Log lines by their time. The primary key must hold the partition key: (id, created_at).
ALTER TABLE sp_logs RENAME TO sp_logs_unpartitioned;
ALTER SEQUENCE sp_logs_id_seq RENAME TO sp_logs_unpartitioned_id_seq;

CREATE TABLE sp_logs (
    id         bigint      GENERATED ALWAYS AS IDENTITY,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    level      text        NOT NULL,
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
) PARTITION BY RANGE (created_at);

CREATE TABLE sp_logs_default PARTITION OF sp_logs DEFAULT;

INSERT INTO sp_logs (id, created_at, level, logger, message, job_name, run_id, fields) OVERRIDING SYSTEM VALUE
SELECT id, created_at, level, logger, message, job_name, run_id, fields FROM sp_logs_unpartitioned;

SELECT setval(pg_get_serial_sequence('sp_logs', 'id'), coalesce((SELECT max(id) FROM sp_logs), 0) + 1, false);

DROP TABLE sp_logs_unpartitioned;

ALTER TABLE sp_logs ADD CONSTRAINT sp_logs_pkey PRIMARY KEY (id, created_at);
CREATE INDEX sp_logs_created_idx ON sp_logs (created_at);
CREATE INDEX sp_logs_job_created_idx ON sp_logs (job_name, created_at);
CREATE INDEX sp_logs_run_idx ON sp_logs (run_id);
