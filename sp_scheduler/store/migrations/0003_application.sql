-- 0003: the application tables the core jobs maintain (docs/application-schema.md is the contract).
-- Plain names, as in the seeds: these are the host application's tables, not the scheduler's own.
-- Every index below serves a cleanup rule or a foreign key; the jobs walk them in keyset order.

-- People. Anonymous accounts are created on first visit; registering upgrades them in place
-- (is_anonymous = false, upgraded_at set). Deleting a user deletes everything it owns (CASCADE).
CREATE TABLE users (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email        text        UNIQUE,                    -- NULL while anonymous
    display_name text,
    is_anonymous boolean     NOT NULL DEFAULT false,
    upgraded_at  timestamptz,                           -- when an anonymous account registered
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz
);
-- cleanup_anonymous_users: old anonymous accounts that never upgraded, oldest first.
CREATE INDEX users_anonymous_created_idx ON users (created_at, id) WHERE is_anonymous AND upgraded_at IS NULL;

-- Sign-in sessions. A session is active while ended_at is NULL; logging out, expiry or revocation
-- end it (ended_at + end_reason, always together).
CREATE TABLE user_sessions (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz,
    end_reason       text        CHECK (end_reason IN ('logout', 'expired', 'revoked')),
    user_agent       text,
    ip_address       inet,
    CONSTRAINT user_sessions_end_is_complete CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
CREATE INDEX user_sessions_user_idx ON user_sessions (user_id);  -- cascades and "has an active session"
-- cleanup_inactive_sessions: open sessions by idleness, ended sessions by age.
CREATE INDEX user_sessions_idle_idx ON user_sessions (last_activity_at, id) WHERE ended_at IS NULL;
CREATE INDEX user_sessions_ended_idx ON user_sessions (ended_at, id) WHERE ended_at IS NOT NULL;

-- Conversation contexts and their messages.
CREATE TABLE contexts (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contexts_user_idx ON contexts (user_id);
CREATE INDEX contexts_created_idx ON contexts (created_at, id);  -- cleanup_empty_contexts

CREATE TABLE context_messages (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    context_id uuid        NOT NULL REFERENCES contexts (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX context_messages_context_idx ON context_messages (context_id, created_at);

-- OAuth: short-lived authorization codes and access/refresh tokens, stored as hashes only.
CREATE TABLE oauth_authorization_codes (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    code_hash      text        NOT NULL UNIQUE,         -- sha256 of the code, never the code
    client_id      text        NOT NULL,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   text        NOT NULL,
    scope          text        NOT NULL DEFAULT '',
    code_challenge text,                                -- PKCE
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);
CREATE INDEX oauth_authorization_codes_user_idx ON oauth_authorization_codes (user_id);
CREATE INDEX oauth_authorization_codes_expires_idx ON oauth_authorization_codes (expires_at, id);

CREATE TABLE oauth_tokens (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash text        NOT NULL UNIQUE,             -- sha256 of the token, never the token
    token_type text        NOT NULL CHECK (token_type IN ('access', 'refresh')),
    client_id  text        NOT NULL,
    user_id    uuid        REFERENCES users (id) ON DELETE CASCADE,  -- NULL for client-credentials tokens
    scope      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX oauth_tokens_user_idx ON oauth_tokens (user_id);
CREATE INDEX oauth_tokens_expires_idx ON oauth_tokens (expires_at, id);

-- Published content. Rows with a source_path are owned by publish_content (synced from
-- services/content/*.md); rows without one belong to the application and the job never touches them.
-- The slug is the identity (the URL): a file whose slug changes publishes a new row and the old one
-- is unpublished, keeping its source_path.
CREATE TABLE content (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    slug         text        NOT NULL UNIQUE,
    kind         text        NOT NULL DEFAULT 'page',
    title        text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    body         text        NOT NULL,                  -- markdown
    front_matter jsonb       NOT NULL DEFAULT '{}',
    tags         text[]      NOT NULL DEFAULT '{}',
    content_hash text        NOT NULL,                  -- sha256 hex of what was synced
    source_path  text,                                  -- relative to services/content/
    published    boolean     NOT NULL DEFAULT true,
    published_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX content_published_idx ON content (kind, published_at DESC) WHERE published;
