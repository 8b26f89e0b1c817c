-- 0004: engagement events and the per-content metrics content_analytics_aggregation derives from them
-- (workers/web/analytics.py). The application inserts events; the job owns every other table here.

-- One row per page view. xact_id is the inserting transaction's id: the aggregator's watermark is a
-- transaction horizon, not an event id, because ids are handed out before commit and a slow
-- transaction can commit a lower id after a higher one was already folded (it would be skipped).
CREATE TABLE engagement_events (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_id      uuid        NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    session_id      text        NOT NULL,
    visitor_id      text        NOT NULL,                -- stable per browser; the session id when unknown
    viewed_at       timestamptz NOT NULL DEFAULT now(),
    time_on_page_ms integer     CHECK (time_on_page_ms >= 0),  -- NULL when the page never reported it
    xact_id         xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX engagement_events_xact_idx ON engagement_events (xact_id);            -- incremental fold
CREATE INDEX engagement_events_viewed_idx ON engagement_events (viewed_at);        -- 7/30-day windows
CREATE INDEX engagement_events_content_idx ON engagement_events (content_id, viewed_at);  -- cascades, reports

-- Running totals and windowed figures per content item.
CREATE TABLE content_metrics (
    content_id          uuid        PRIMARY KEY REFERENCES content (id) ON DELETE CASCADE,
    total_views         bigint      NOT NULL DEFAULT 0,
    unique_visitors     bigint      NOT NULL DEFAULT 0,
    timed_views         bigint      NOT NULL DEFAULT 0,  -- views that reported a time on page
    time_on_page_sum_ms bigint      NOT NULL DEFAULT 0,
    avg_time_on_page_ms integer,                         -- NULL until a view reports its time
    views_7d            bigint      NOT NULL DEFAULT 0,
    views_30d           bigint      NOT NULL DEFAULT 0,
    trend               text        NOT NULL DEFAULT 'flat' CHECK (trend IN ('up', 'down', 'flat')),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Windows move without new events: rows with recent views are refreshed every run (a trend needs views_30d > 0).
CREATE INDEX content_metrics_windowed_idx ON content_metrics (content_id) WHERE views_30d > 0;

-- Exact unique visitors without rescanning events: one row per (content, visitor) ever seen.
CREATE TABLE content_visitors (
    content_id uuid NOT NULL REFERENCES content (id) ON DELETE CASCADE,
    visitor_id text NOT NULL,
    PRIMARY KEY (content_id, visitor_id)
);

-- How far each aggregation has folded: every event whose xact_id < last_xact_id is in the totals.
CREATE TABLE analytics_watermarks (
    name          text        PRIMARY KEY,
    last_xact_id  xid8        NOT NULL DEFAULT '0',
    last_event_id bigint      NOT NULL DEFAULT 0,        -- highest event id folded so far (for humans)
    events_folded bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
