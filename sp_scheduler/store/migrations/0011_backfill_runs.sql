-- 0011: backfill runs (`sp-scheduler jobs backfill`): trigger 'backfill', a run of one past cron slot,
-- enqueued by the CLI with its own scheduled_for. Such a run stands for its slot exactly as a scheduled
-- run does, so the once-per-slot rule covers both: at most one row per (job_name, scheduled_for) among
-- 'schedule' and 'backfill' rows, whoever writes it first. As for scheduled rows, a backfill row is
-- partitioned by its slot (partition_at = scheduled_for), so every row of one slot lands in one
-- partition and that partition's unique index decides (docs/decisions.md, "Retention by partition").
-- The CHECKs validate existing rows (a scan of sp_job_runs); no existing row can fail them.

ALTER TABLE sp_job_runs DROP CONSTRAINT sp_job_runs_trigger_check;
ALTER TABLE sp_job_runs ADD CONSTRAINT sp_job_runs_trigger_check
    CHECK (trigger IN ('schedule', 'startup', 'manual', 'backfill'));

ALTER TABLE sp_job_runs DROP CONSTRAINT sp_job_runs_schedule_has_slot;
ALTER TABLE sp_job_runs ADD CONSTRAINT sp_job_runs_schedule_has_slot
    CHECK (trigger NOT IN ('schedule', 'backfill') OR scheduled_for IS NOT NULL);

ALTER TABLE sp_job_runs DROP CONSTRAINT sp_job_runs_slot_is_partition_key;
ALTER TABLE sp_job_runs ADD CONSTRAINT sp_job_runs_slot_is_partition_key
    CHECK (trigger NOT IN ('schedule', 'backfill') OR partition_at = scheduled_for);

DROP INDEX sp_job_runs_slot_key;
CREATE UNIQUE INDEX sp_job_runs_slot_key ON sp_job_runs (job_name, scheduled_for, partition_at)
    WHERE trigger IN ('schedule', 'backfill');
