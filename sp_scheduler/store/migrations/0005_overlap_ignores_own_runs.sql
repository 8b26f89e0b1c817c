-- 0005: the overlap rule ignores the claiming process's own earlier runs.
-- A worker process runs one run at a time and records each outcome in the background (keeper.py),
-- so when it claims its next run, a row of its own still marked running is a run that has ended and
-- whose outcome is on its way, not a run still going. Counting it would skip a slot that follows a
-- run finished a moment ago. Runs of other processes count as before.

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
    PERFORM pg_advisory_xact_lock(hashtextextended('sp-scheduler:job:' || p_job, 0));

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
        SELECT enabled INTO v_override FROM sp_job_state WHERE job_name = p_job;
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
        IF NOT FOUND THEN  -- beat's record_slot (which takes no job lock) holds the slot already
            SELECT * INTO v_existing FROM sp_job_runs
             WHERE job_name = p_job AND scheduled_for = p_slot AND trigger = 'schedule';
            RETURN QUERY SELECT 'duplicate'::text,
                format('already claimed as run %s (%s)', v_existing.id, v_existing.status), v_existing;
            RETURN;
        END IF;
    END IF;

    RETURN QUERY SELECT CASE WHEN v_running THEN 'run' ELSE 'skipped' END, v_message, v_existing;
END;
$$;
