-- 0010: alerting (docs/alerts.md). A per-job alert state row, the outbox of alert events written in the
-- same transaction as the run outcome or slot that caused them (by sp_alert_observe and
-- sp_alert_missed in store/sql/functions.sql), and one delivery row per (event, target) that the
-- notifier claims under a lease, so a restart mid-delivery neither loses nor repeats one beyond
-- at-least-once.

-- One row per job that ever failed, went late or was paused: the state machine's memory.
CREATE TABLE sp_alert_state (
    job_name             text        PRIMARY KEY,
    state                text        NOT NULL CONSTRAINT sp_alert_state_state_check
                                     CHECK (state IN ('ok', 'failing', 'late')),
    since                timestamptz NOT NULL DEFAULT clock_timestamp(),
    consecutive_failures integer     NOT NULL DEFAULT 0,
    pause_base           integer     NOT NULL DEFAULT 0,  -- failures already answered by an auto-pause
    last_run_id          uuid,
    last_notified_at     timestamptz,                     -- the newest event queued for this job
    paused_at            timestamptz,                     -- when auto-pause last disabled the job
    updated_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Alert events, newest last. routed_at is set when the notifier has turned the event into deliveries
-- (one per target its rules name); suppressed says why an event went nowhere (no rule, rate limit).
CREATE TABLE sp_alert_outbox (
    id          bigserial   PRIMARY KEY,
    job_name    text        NOT NULL,
    event       text        NOT NULL CONSTRAINT sp_alert_outbox_event_check CHECK (
                    event IN ('failed', 'timeout', 'lost', 'missed', 'late', 'recovered', 'paused')),
    run_id      uuid,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    routed_at   timestamptz,
    suppressed  text
);
CREATE INDEX sp_alert_outbox_unrouted ON sp_alert_outbox (id) WHERE routed_at IS NULL;
CREATE INDEX sp_alert_outbox_job ON sp_alert_outbox (job_name, created_at);

-- One attempt-tracked delivery of an event to one target. A claim sets lease_expires_at and counts the
-- attempt; the answer sets delivered_at, or next_attempt_at and last_error, or gave_up_at.
CREATE TABLE sp_alert_deliveries (
    id               bigserial   PRIMARY KEY,
    outbox_id        bigint      NOT NULL REFERENCES sp_alert_outbox (id) ON DELETE CASCADE,
    target           text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_expires_at timestamptz,
    delivered_at     timestamptz,
    gave_up_at       timestamptz,
    last_error       text,
    CONSTRAINT sp_alert_deliveries_once UNIQUE (outbox_id, target)
);
CREATE INDEX sp_alert_deliveries_pending ON sp_alert_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
