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

-- As in 0006, except that an expired override no longer wins over the config.
CREATE OR REPLACE FUNCTION sp_claim_run(
    p_id          uuid,
    p_job         text,
    p_trigger     text,
    p_slot        timestamptz,
    p_params      jsonb,
    p_worker      text,
    p_lease       double precision,
    p_overlap     text,
    p_enabled     boolean,      -- the YAML's answer (and the scheduler switch)
    p_use_override boolean      -- true for scheduled slots: an override in sp_job_state wins over p_enabled
) RETURNS TABLE (outcome text, reason text, run sp_job_runs)
LANGUAGE plpgsql AS $$
DECLARE
    v_existing  sp_job_runs%ROWTYPE;
    v_found     boolean;
    v_enabled   boolean := p_enabled;
    v_override  boolean;
    v_other     uuid;
    v_status    text := 'running';
    v_message   text;
    v_running   boolean;
BEGIN
    -- The job lock orders the overlap check and the insert between workers; only 'skip' needs it. A
    -- duplicate slot meets the unique index, and a queued manual run its row lock, either way.
    IF p_overlap = 'skip' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('sp-scheduler:job:' || p_job, 0));
    END IF;

    IF p_trigger = 'schedule' THEN
        SELECT * INTO v_existing FROM sp_job_runs
         WHERE job_name = p_job AND scheduled_for = p_slot AND trigger = 'schedule';
    ELSE
        SELECT * INTO v_existing FROM sp_job_runs WHERE id = p_id FOR UPDATE;
    END IF;
    v_found := FOUND;
    IF v_found AND (p_trigger = 'schedule' OR v_existing.status <> 'queued') THEN
        RETURN QUERY SELECT 'duplicate'::text,
            format('already claimed as run %s (%s)', v_existing.id, v_existing.status), v_existing;
        RETURN;
    END IF;

    IF p_use_override THEN
        SELECT enabled INTO v_override FROM sp_job_state
         WHERE job_name = p_job AND (expires_at IS NULL OR expires_at > clock_timestamp());
        IF FOUND THEN
            v_enabled := v_override;
        END IF;
    END IF;

    IF NOT v_enabled THEN
        v_status := 'skipped';
        v_message := 'job is disabled';
    ELSIF p_overlap = 'skip' THEN
        SELECT id INTO v_other FROM sp_job_runs
         WHERE job_name = p_job AND status = 'running' AND lease_expires_at > clock_timestamp() AND id <> p_id
           AND worker IS DISTINCT FROM p_worker
         ORDER BY started_at LIMIT 1;
        IF FOUND THEN
            v_status := 'skipped';
            v_message := format('overlap: run %s still running', v_other);
        END IF;
    END IF;
    v_running := v_status = 'running';

    IF v_found THEN
        UPDATE sp_job_runs SET
            status = v_status, message = v_message,
            started_at = CASE WHEN v_running THEN clock_timestamp() END,
            finished_at = CASE WHEN v_running THEN NULL ELSE clock_timestamp() END,
            worker = p_worker,
            lease_expires_at = CASE WHEN v_running THEN clock_timestamp() + make_interval(secs => p_lease) END
         WHERE id = p_id
        RETURNING * INTO v_existing;
    ELSE
        INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, message, started_at, finished_at,
                                 worker, lease_expires_at, params)
        VALUES (p_id, p_job, p_trigger, p_slot, v_status, v_message,
                CASE WHEN v_running THEN clock_timestamp() END,
                CASE WHEN v_running THEN NULL ELSE clock_timestamp() END,
                p_worker,
                CASE WHEN v_running THEN clock_timestamp() + make_interval(secs => p_lease) END,
                p_params)
        ON CONFLICT DO NOTHING
        RETURNING * INTO v_existing;
        IF NOT FOUND THEN  -- another delivery, or beat's record_slot, holds the slot or the id already
            IF p_trigger = 'schedule' THEN
                SELECT * INTO v_existing FROM sp_job_runs
                 WHERE job_name = p_job AND scheduled_for = p_slot AND trigger = 'schedule';
            ELSE
                SELECT * INTO v_existing FROM sp_job_runs WHERE id = p_id;
            END IF;
            RETURN QUERY SELECT 'duplicate'::text,
                format('already claimed as run %s (%s)', v_existing.id, v_existing.status), v_existing;
            RETURN;
        END IF;
    END IF;

    RETURN QUERY SELECT CASE WHEN v_running THEN 'run' ELSE 'skipped' END, v_message, v_existing;
END;
$$;
