-- The ledger's PL/pgSQL functions: the one place their text lives.
-- `migrate()` applies this file after the table migrations, under the same advisory lock, and
-- re-creates a function only when its statement below changed (sp_schema_functions keeps a sha256 of
-- each); a function whose arguments or result changed is dropped and created anew. Edit a function
-- here, never in a migration: migrations hold tables and indexes only (docs/decisions.md, "Where the
-- SQL lives"). One statement per function, `CREATE OR REPLACE FUNCTION name(` to its closing `$$;`;
-- comments between statements are documentation and not part of any function's hash.

-- Record outcomes (a JSON array of {id, status, message, items_processed, items_failed, duration_ms,
-- error, traceback, elapsed}) and log lines (a JSON array of sp_logs rows). Returns one row per outcome
-- whose run exists: 'finished' with the updated row, or 'unchanged' with the row as it stands when the
-- run had already finished otherwise. A 'queued' run (its message could not be published) can be closed
-- as failed. A run the reaper marked 'lost' that then really finishes records its true outcome, and its
-- message says it had been marked lost, and why, instead of overwriting that silently. Each finished
-- run goes through sp_alert_observe, so an alert it causes is queued in the same transaction.
-- In PL/pgSQL the statements keep their plans for the session, and each outcome is a primary key update.
CREATE OR REPLACE FUNCTION sp_finish_runs(p_outcomes jsonb, p_logs jsonb)
RETURNS TABLE (outcome text, reason text, run sp_job_runs)
LANGUAGE plpgsql AS $$
DECLARE
    o      record;
    v_row  sp_job_runs%ROWTYPE;
BEGIN
    IF p_logs IS NOT NULL AND jsonb_array_length(p_logs) > 0 THEN
        INSERT INTO sp_logs (created_at, level, logger, message, job_name, run_id, fields)
        SELECT l.created_at, l.level, l.logger, l.message, l.job_name, l.run_id, coalesce(l.fields, '{}')
          FROM jsonb_to_recordset(p_logs) AS l(created_at timestamptz, level text, logger text, message text,
                                               job_name text, run_id uuid, fields jsonb);
    END IF;
    FOR o IN SELECT * FROM jsonb_to_recordset(p_outcomes) AS x(
                 id uuid, status text, message text, items_processed bigint, items_failed bigint,
                 duration_ms bigint, error text, traceback text, elapsed double precision)
    LOOP
        UPDATE sp_job_runs r SET
            status = o.status,
            message = CASE WHEN r.status = 'lost'
                           THEN concat_ws(' ', o.message,
                                          format('[%s after it had been marked lost: %s]', o.status, r.message))
                           ELSE o.message END,
            items_processed = coalesce(o.items_processed, 0), items_failed = coalesce(o.items_failed, 0),
            duration_ms = o.duration_ms, error = o.error, traceback = o.traceback,
            finished_at = CASE WHEN o.elapsed IS NULL OR r.started_at IS NULL THEN clock_timestamp()
                          ELSE least(clock_timestamp(), r.started_at + make_interval(secs => o.elapsed)) END,
            lease_expires_at = NULL
         WHERE r.id = o.id AND r.status IN ('queued', 'running', 'lost')
        RETURNING * INTO v_row;
        IF FOUND THEN
            PERFORM sp_alert_observe(v_row);  -- the alert state and outbox, in this transaction
            RETURN QUERY SELECT 'finished'::text, NULL::text, v_row;
        ELSE
            SELECT * INTO v_row FROM sp_job_runs WHERE id = o.id;
            IF FOUND THEN
                RETURN QUERY SELECT 'unchanged'::text, format('already %s', v_row.status), v_row;
            END IF;
        END IF;
    END LOOP;
END;
$$;

-- Claim a delivery in one round trip: 'run' (the row is now running under a lease), 'duplicate' (the
-- slot or id is held already; the holding row comes back; a scheduled and a backfill run of one slot
-- hold the same slot), or 'skipped' (recorded: the job is disabled,
-- or `overlap: skip` and another process's run is still marked running). With p_use_override an
-- unexpired override in sp_job_state wins over p_enabled. For 'skip' the per-job advisory lock orders
-- the overlap check and the insert between workers; 'allow' needs no lock, which would make every claim
-- of a busy job wait for the previous claim's commit. The overlap rule ignores the claiming process's
-- own rows (a process runs one run at a time: its own running row is an ended run whose outcome is on
-- its way, see keeper.py) and counts every other row marked running, its lease expired or not, until a
-- reaper marks it lost: an expired lease may only mean its worker could not reach Postgres.
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
    v_other_lease timestamptz;
    v_status    text := 'running';
    v_message   text;
    v_running   boolean;
BEGIN
    -- The job lock orders the overlap check and the insert between workers; only 'skip' needs it. A
    -- duplicate slot meets the unique index, and a queued manual run its row lock, either way.
    IF p_overlap = 'skip' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('sp-scheduler:job:' || p_job, 0));
    END IF;

    -- A slot's rows (scheduled and backfill runs) all live in the partition of its instant
    -- (partition_at = scheduled_for), where the unique index decides. Any other id is not unique by index
    -- across partitions (the key must hold partition_at), so a claim that does not find it inserts it
    -- under a lock on the id, after looking again.
    IF p_trigger IN ('schedule', 'backfill') THEN
        SELECT * INTO v_existing FROM sp_job_runs
         WHERE job_name = p_job AND scheduled_for = p_slot AND partition_at = p_slot
           AND trigger IN ('schedule', 'backfill');
        v_found := FOUND;
    ELSE
        SELECT * INTO v_existing FROM sp_job_runs WHERE id = p_id FOR UPDATE;
        v_found := FOUND;
        IF NOT v_found THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('sp-scheduler:run:' || p_id::text, 0));
            SELECT * INTO v_existing FROM sp_job_runs WHERE id = p_id FOR UPDATE;
            v_found := FOUND;
        END IF;
    END IF;
    -- Only a queued row of this very run is claimed; a slot held by another row (a scheduled run, or a
    -- backfill of it) is a duplicate, whatever its status.
    IF v_found AND (p_trigger = 'schedule' OR v_existing.id <> p_id OR v_existing.status <> 'queued') THEN
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
        SELECT id, lease_expires_at INTO v_other, v_other_lease FROM sp_job_runs
         WHERE job_name = p_job AND status = 'running' AND id <> p_id
           AND worker IS DISTINCT FROM p_worker
         ORDER BY started_at LIMIT 1;
        IF FOUND THEN
            v_status := 'skipped';
            IF v_other_lease > clock_timestamp() THEN
                v_message := format('overlap: run %s still running', v_other);
            ELSE
                v_message := format('overlap: run %s still marked running (its lease expired at %s and no reaper'
                                    ' has marked it lost yet)', v_other,
                                    to_char(v_other_lease AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
            END IF;
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
         WHERE id = p_id AND partition_at = v_existing.partition_at
        RETURNING * INTO v_existing;
    ELSE
        INSERT INTO sp_job_runs (id, job_name, trigger, scheduled_for, status, message, started_at, finished_at,
                                 worker, lease_expires_at, params, partition_at)
        VALUES (p_id, p_job, p_trigger, p_slot, v_status, v_message,
                CASE WHEN v_running THEN clock_timestamp() END,
                CASE WHEN v_running THEN NULL ELSE clock_timestamp() END,
                p_worker,
                CASE WHEN v_running THEN clock_timestamp() + make_interval(secs => p_lease) END,
                p_params,
                CASE WHEN p_trigger IN ('schedule', 'backfill') THEN p_slot ELSE clock_timestamp() END)
        ON CONFLICT DO NOTHING
        RETURNING * INTO v_existing;
        IF NOT FOUND THEN  -- another delivery, or beat's record_slot, holds the slot or the id already
            IF p_trigger IN ('schedule', 'backfill') THEN
                SELECT * INTO v_existing FROM sp_job_runs
                 WHERE job_name = p_job AND scheduled_for = p_slot AND partition_at = p_slot
                   AND trigger IN ('schedule', 'backfill');
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

-- sp_finish_runs, then sp_claim_run, in one statement: the finished rows first, the claim's row last.
-- A busy worker process ends a run and claims its next a moment later; recording the outcome with the
-- claim saves a round trip, a commit and a statement per run.
CREATE OR REPLACE FUNCTION sp_claim_run_after(
    p_outcomes jsonb, p_logs jsonb,  -- sp_finish_runs's arguments, then sp_claim_run's:
    p_id uuid, p_job text, p_trigger text, p_slot timestamptz, p_params jsonb, p_worker text,
    p_lease double precision, p_overlap text, p_enabled boolean, p_use_override boolean
) RETURNS TABLE (outcome text, reason text, run sp_job_runs)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT * FROM sp_finish_runs(p_outcomes, p_logs);
    RETURN QUERY SELECT * FROM sp_claim_run(p_id, p_job, p_trigger, p_slot, p_params, p_worker, p_lease,
                                            p_overlap, p_enabled, p_use_override);
END;
$$;

-- The alert state machine (docs/alerts.md), the one place it lives. Called with every run that ends:
-- by sp_finish_runs and by the statements of store/closing.py (reaped, interrupted, refused runs), in
-- their transaction. A failure (failed, timeout, lost) counts in the job's sp_alert_state row and,
-- when the job was not failing already, queues one event named after the status; a success of a job
-- that was failing or late queues one 'recovered' and resets the row. Anything else changes nothing.
-- Returns whether an event was queued. A success of a job with no row, or an 'ok' one, costs one
-- primary-key read and no write.
CREATE OR REPLACE FUNCTION sp_alert_observe(p_run sp_job_runs)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_prev    text;
    v_last    uuid;
    v_count   integer;
    v_detail  jsonb;
BEGIN
    IF p_run.status = 'succeeded' THEN
        PERFORM 1 FROM sp_alert_state WHERE job_name = p_run.job_name AND state <> 'ok';
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        SELECT state, consecutive_failures INTO v_prev, v_count
          FROM sp_alert_state WHERE job_name = p_run.job_name FOR UPDATE;
        IF v_prev = 'ok' THEN  -- another success recovered it meanwhile
            RETURN false;
        END IF;
        UPDATE sp_alert_state SET state = 'ok', since = clock_timestamp(), consecutive_failures = 0,
               pause_base = 0, paused_at = NULL, last_run_id = p_run.id, last_notified_at = clock_timestamp(),
               updated_at = clock_timestamp()
         WHERE job_name = p_run.job_name;
    ELSIF p_run.status IN ('failed', 'timeout', 'lost') THEN
        INSERT INTO sp_alert_state (job_name, state) VALUES (p_run.job_name, 'ok') ON CONFLICT DO NOTHING;
        SELECT state, last_run_id INTO v_prev, v_last FROM sp_alert_state WHERE job_name = p_run.job_name FOR UPDATE;
        IF v_prev = 'failing' AND v_last = p_run.id THEN  -- a run reaped as lost that then failed: counted once
            RETURN false;
        END IF;
        UPDATE sp_alert_state SET
               state = 'failing',
               since = CASE WHEN v_prev = 'failing' THEN since ELSE clock_timestamp() END,
               consecutive_failures = consecutive_failures + 1,
               last_run_id = p_run.id,
               last_notified_at = CASE WHEN v_prev = 'failing' THEN last_notified_at ELSE clock_timestamp() END,
               updated_at = clock_timestamp()
         WHERE job_name = p_run.job_name
        RETURNING consecutive_failures INTO v_count;
        IF v_prev = 'failing' THEN  -- alerted already: nothing until it recovers (or renotify, notifier.py)
            RETURN false;
        END IF;
    ELSE
        RETURN false;
    END IF;
    v_detail := jsonb_build_object(
        'status', p_run.status, 'trigger', p_run.trigger, 'scheduled_for', p_run.scheduled_for,
        'started_at', p_run.started_at, 'finished_at', p_run.finished_at, 'duration_ms', p_run.duration_ms,
        'message', p_run.message, 'error', p_run.error, 'previous_state', v_prev,
        'consecutive_failures', v_count);
    INSERT INTO sp_alert_outbox (job_name, event, run_id, detail)
    VALUES (p_run.job_name, CASE WHEN p_run.status = 'succeeded' THEN 'recovered' ELSE p_run.status END,
            p_run.id, v_detail);
    RETURN true;
END;
$$;

-- Slots of one job that beat (or a worker) recorded 'missed' together: one 'missed' event for the
-- batch, queued in the transaction that recorded them; p_run is the newest slot's run id. Missing a
-- slot is no failure, so the job's alert state stays as it is.
CREATE OR REPLACE FUNCTION sp_alert_missed(
    p_job text, p_run uuid, p_count integer, p_first timestamptz, p_last timestamptz, p_message text
) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF p_count < 1 THEN
        RETURN false;
    END IF;
    INSERT INTO sp_alert_outbox (job_name, event, run_id, detail)
    VALUES (p_job, 'missed', p_run, jsonb_build_object(
        'status', 'missed', 'trigger', 'schedule', 'scheduled_for', p_last, 'first_missed', p_first,
        'missed_slots', p_count, 'message', p_message));
    RETURN true;
END;
$$;

-- sp_job_latest (migration 0012) follows every write of a run's status, whichever path makes it:
-- claims, outcomes, reaping, interruptions, slots recorded skipped or missed, backfill rows, manual
-- runs queued by the CLI, and deletions (retention, a backfill whose message Redis refused). The
-- trigger `sp_job_latest_track` (AFTER INSERT OR DELETE OR UPDATE OF status, per row, on the
-- partitioned table: cloned onto every partition; store/latest.py creates it) calls this.
-- A new run of a job prunes that job's rows the summary no longer needs: past its 20 newest finished
-- runs (LATEST_KEPT in store/latest.py; so past its 20 newest runs too) and not the newest of its
-- (status, trigger). Rows whose status can still change (queued, running, lost) are never pruned nor
-- locked (the candidates are chosen first, only prunable ones are locked), so a later update of a run
-- never waits on a prune; the walk to the candidates skips them through a partial index, so a backfill's
-- thousand queued rows cost it nothing. Rows another transaction holds are skipped (SKIP LOCKED) and
-- pruned by a later run, so the prune never waits either. Rows moved between partitions by store/partitions.py (the setting
-- sp_scheduler.moving_rows is on in that transaction) are no new runs and no deletions: ignored.
-- enable_seqscan is off inside it: a session plans these statements once and keeps the plan, and a
-- plan made while the summary's statistics still described it empty (a new install) scanned all of
-- it on every write once it had grown (3 ms a claim at 3,000 rows); the indexes suit every size.
-- OFFSET 0 keeps the "newer of its kind" check a probe per candidate, not a join over the job's rows.
CREATE OR REPLACE FUNCTION sp_job_latest_track()
RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    IF current_setting('sp_scheduler.moving_rows', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM sp_job_latest WHERE run_id = OLD.id;
        RETURN NULL;
    END IF;
    INSERT INTO sp_job_latest (run_id, job_name, status, trigger, scheduled_for, created_at, partition_at)
    VALUES (NEW.id, NEW.job_name, NEW.status, NEW.trigger, NEW.scheduled_for, NEW.created_at, NEW.partition_at)
    ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, partition_at = excluded.partition_at;
    IF TG_OP = 'INSERT' THEN
        DELETE FROM sp_job_latest d WHERE d.run_id IN (
            SELECT c.run_id FROM sp_job_latest c
             WHERE c.run_id = ANY (ARRAY(
                       SELECT o.run_id FROM sp_job_latest o
                        WHERE o.job_name = NEW.job_name AND o.status NOT IN ('queued', 'running', 'lost')
                        ORDER BY o.created_at DESC, o.run_id DESC OFFSET 20))
               AND c.status NOT IN ('queued', 'running', 'lost')
               AND EXISTS (SELECT 1 FROM sp_job_latest n
                            WHERE n.job_name = c.job_name AND n.status = c.status AND n.trigger = c.trigger
                              AND (n.created_at, n.run_id) > (c.created_at, c.run_id) OFFSET 0)
               FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN NULL;
END;
$$;

-- sp_job_latest from scratch: for every job in sp_job_runs, its 20 newest runs and its newest run of
-- each (status, trigger). One pass over the ledger grouped in memory, then index probes per job and
-- per kind. Called once, in the transaction that creates the trigger (store/latest.py), and by tests
-- and benchmarks after a bulk fill made with the trigger off. Returns the rows written.
CREATE OR REPLACE FUNCTION sp_job_latest_rebuild()
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_rows bigint;
BEGIN
    DELETE FROM sp_job_latest;
    WITH kinds AS MATERIALIZED (
        SELECT job_name, status, trigger, max(created_at) AS newest FROM sp_job_runs GROUP BY 1, 2, 3
    ), jobs AS (
        SELECT DISTINCT job_name FROM kinds
    )
    INSERT INTO sp_job_latest (run_id, job_name, status, trigger, scheduled_for, created_at, partition_at)
    SELECT id, job_name, status, trigger, scheduled_for, created_at, partition_at FROM (
        SELECT n.* FROM kinds k CROSS JOIN LATERAL (
            SELECT r.id, r.job_name, r.status, r.trigger, r.scheduled_for, r.created_at, r.partition_at
              FROM sp_job_runs r
             WHERE r.job_name = k.job_name AND r.status = k.status AND r.created_at = k.newest
               AND r.trigger = k.trigger
             ORDER BY r.id DESC LIMIT 1) n
        UNION
        SELECT n.* FROM jobs j CROSS JOIN LATERAL (
            SELECT r.id, r.job_name, r.status, r.trigger, r.scheduled_for, r.created_at, r.partition_at
              FROM sp_job_runs r WHERE r.job_name = j.job_name
             ORDER BY r.created_at DESC, r.id DESC LIMIT 20) n
    ) chosen;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;
