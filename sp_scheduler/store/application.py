"""The host application's tables (migration 0003), which the core jobs maintain.

docs/application-schema.md is the contract; this is the one list of their names in code.
"""

APPLICATION_TABLES = (
    "users",
    "user_sessions",
    "contexts",
    "context_messages",
    "oauth_authorization_codes",
    "oauth_tokens",
    "content",
)
