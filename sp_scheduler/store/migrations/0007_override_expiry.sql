-- 0007: overrides that expire and can be cleared, a trail of every override change, and an index
-- for the reaper's search for queued runs no worker claimed.

-- An override may carry an expiry (`jobs disable NAME --for 2h`); past it the config's value stands
-- again. Readers ignore expired rows; the reaper deletes them and records the expiry in the trail.
ALTER TABLE sp_job_state ADD COLUMN expires_at timestamptz;

-- Every change of an override: enable, disable (with their expiry), reset (cleared by an operator)
-- and expire (ran out by itself; dated at the expiry, by whoever set it). `jobs show` prints the last few.
CREATE TABLE sp_job_state_changes (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_name   text        NOT NULL,
    action     text        NOT NULL CHECK (action IN ('enable', 'disable', 'reset', 'expire')),
    enabled    boolean,
    expires_at timestamptz,
    actor      text        NOT NULL,
    reason     text,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX sp_job_state_changes_job_at_idx ON sp_job_state_changes (job_name, at DESC, id DESC);

-- Queued runs (manual and startup) by age: the reaper marks those no worker claimed in time `lost`.
CREATE INDEX sp_job_runs_queued_idx ON sp_job_runs (enqueued_at) WHERE status = 'queued';

-- The claim's rule that an expired override no longer wins over the config is in sp_claim_run
-- (sp_scheduler/store/sql/functions.sql).
