-- 0012: sp_job_latest, the summary the "newest run of each job" reads use (`jobs status`, `jobs list`,
-- the dashboard's jobs page, beat's timestamps, the notifier's late rule). On the weekly-partitioned
-- ledger such a read cannot prune partitions (the key is the slot, not created_at), so it made one
-- index probe per job per partition; here it is one small, unpartitioned table.
--
-- One row per run it holds, keyed by the run's id: for each job its 20 newest runs (the dashboard's
-- strip) and its newest run of each (status, trigger), so "the newest run of these statuses and these
-- triggers" is always among a job's rows. Rows are written by the trigger `sp_job_latest_track` on
-- sp_job_runs (sp_scheduler/store/sql/functions.sql) and filled, together with the trigger's creation,
-- by `sp_job_latest_rebuild` (store/latest.py, `ensure_tracking`): in one transaction, so no write falls
-- between the fill and the trigger. docs/decisions.md, "The newest runs of each job: sp_job_latest".

CREATE TABLE sp_job_latest (
    run_id        uuid        PRIMARY KEY,
    job_name      text        NOT NULL,
    status        text        NOT NULL,
    trigger       text        NOT NULL,
    scheduled_for timestamptz,
    created_at    timestamptz NOT NULL,
    partition_at  timestamptz NOT NULL  -- with run_id, the key of the run's row in sp_job_runs
);

-- A job's rows newest first (the strip, the newest of given statuses), and per kind (the trigger's prune).
CREATE INDEX sp_job_latest_job_created_idx ON sp_job_latest (job_name, created_at DESC, run_id DESC);
CREATE INDEX sp_job_latest_job_kind_idx ON sp_job_latest (job_name, status, trigger, created_at DESC, run_id DESC);
-- The rows the trigger may prune, newest first: it walks past the 20 newest without reading live ones.
CREATE INDEX sp_job_latest_job_prunable_idx ON sp_job_latest (job_name, created_at DESC, run_id DESC)
    WHERE status NOT IN ('queued', 'running', 'lost');
