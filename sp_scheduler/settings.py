"""One settings object, built from environment variables and CLI flags (twelve-factor: no secrets in YAML)."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sp_scheduler.errors import UsageError
from sp_scheduler.params import roots_for
from sp_scheduler.redact import redact_url
from sp_scheduler.redis_url import SENTINEL_FORM, RedisUrlError, is_sentinel_url, parse_sentinel_url

DEFAULT_CONFIG = Path("services/scheduler/config.yaml")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SCHEMES = ("redis", "rediss", "unix")
# A queued run (manual, startup or backfill) that no worker claimed within this many seconds is reaped as `lost`
# ("never claimed"): its message vanished, or no worker serves its queue (docs/decisions.md).
DEFAULT_QUEUED_DEADLINE = 3600.0


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"environment variable {name}={raw!r} is not a number") from None
    if value <= 0:
        raise UsageError(f"environment variable {name}={raw!r} must be positive")
    return value


def _env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    """A whole number within bounds: `SP_DB_POOL_SIZE=0.5` is an error, not a pool of 0."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"environment variable {name}={raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise UsageError(f"environment variable {name}={raw!r} must be between {minimum} and {maximum}")
    return value


def check_redis_url(url: str) -> str:
    """The URL if redis-py and kombu can use it; a one-line error naming the setting (password masked) if not."""
    if is_sentinel_url(url):
        try:
            parse_sentinel_url(url)
        except RedisUrlError as exc:
            raise UsageError(f"invalid Redis URL {redact_url(url)!r} (SP_REDIS_URL / --redis-url): {exc}") from None
        return url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (parsing the port is the check: it raises on a bad one)
    except ValueError:
        # urllib's message quotes what it took for the port, which may be a piece of the password.
        raise UsageError(
            f"invalid Redis URL {redact_url(url)!r} (SP_REDIS_URL / --redis-url): its port is not a number "
            "(a password with '/', '@' or ':' must be percent-encoded)"
        ) from None
    if parts.scheme not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
        raise UsageError(
            f"invalid Redis URL {redact_url(url)!r} (SP_REDIS_URL / --redis-url): expected "
            f"redis://[[user]:password@]host[:port][/db], rediss://..., unix:///path/to/socket or {SENTINEL_FORM}"
        )
    return url


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise UsageError(f"environment variable {name}={raw!r} must be on or off")


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Where things are and how long leases last; read once per process."""

    database_url: str | None = None
    redis_url: str = DEFAULT_REDIS_URL
    config_path: Path = DEFAULT_CONFIG
    profile_path: Path | None = None
    services_dir: Path = Path("services")
    output_dir: Path = Path("web/dist")
    output_root: Path | None = None  # where path parameters may write; None: output_dir's parent
    lease_seconds: float = 30.0
    db_pool_size: int = 4
    ledger_synchronous_commit: bool = True
    shutdown_grace: float = 60.0
    queued_deadline: float = DEFAULT_QUEUED_DEADLINE
    metrics_port: int | None = None
    actor: str = field(default_factory=_default_actor)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `SP_*` variables; explicit overrides (CLI flags) win when not None."""
        env = os.environ if env is None else env
        profile = env.get("SP_PROFILE") or None
        settings = cls(
            database_url=env.get("SP_DATABASE_URL") or None,
            redis_url=env.get("SP_REDIS_URL") or DEFAULT_REDIS_URL,
            config_path=Path(env.get("SP_CONFIG") or DEFAULT_CONFIG),
            profile_path=Path(profile) if profile else None,
            services_dir=Path(env.get("SP_SERVICES_DIR") or "services"),
            output_dir=Path(env.get("SP_OUTPUT_DIR") or "web/dist"),
            output_root=Path(env["SP_OUTPUT_ROOT"]) if env.get("SP_OUTPUT_ROOT") else None,
            lease_seconds=_env_float(env, "SP_RUN_LEASE", 30.0),
            db_pool_size=_env_int(env, "SP_DB_POOL_SIZE", 4, minimum=1, maximum=1000),
            ledger_synchronous_commit=_env_bool(env, "SP_LEDGER_SYNC_COMMIT", True),
            shutdown_grace=_env_float(env, "SP_SHUTDOWN_GRACE", 60.0),
            queued_deadline=_env_float(env, "SP_QUEUED_DEADLINE", DEFAULT_QUEUED_DEADLINE),
            metrics_port=_env_int(env, "SP_METRICS_PORT", 0, minimum=0, maximum=65535) or None,
            actor=env.get("SP_ACTOR") or _default_actor(),
        )
        settings = replace(settings, **{key: value for key, value in overrides.items() if value is not None})
        check_redis_url(settings.redis_url)
        return settings

    def param_roots(self) -> dict[str, Path]:
        """The directories path parameters must resolve inside: output (SP_OUTPUT_ROOT) and services."""
        return roots_for(self.output_root or self.output_dir.absolute().parent, self.services_dir)

    def require_database_url(self) -> str:
        """The database URL, or a one-line error saying how to set it."""
        if not self.database_url:
            raise UsageError("no database configured: set SP_DATABASE_URL or pass --database-url")
        return self.database_url

    def to_env(self) -> dict[str, str]:
        """The same settings as environment variables, for child processes (beat, worker)."""
        env = {
            "SP_REDIS_URL": self.redis_url,
            "SP_CONFIG": str(self.config_path),
            "SP_SERVICES_DIR": str(self.services_dir),
            "SP_OUTPUT_DIR": str(self.output_dir),
            "SP_RUN_LEASE": str(self.lease_seconds),
            "SP_DB_POOL_SIZE": str(self.db_pool_size),
            "SP_LEDGER_SYNC_COMMIT": "on" if self.ledger_synchronous_commit else "off",
            "SP_SHUTDOWN_GRACE": str(self.shutdown_grace),
            "SP_QUEUED_DEADLINE": str(self.queued_deadline),
        }
        if self.database_url:
            env["SP_DATABASE_URL"] = self.database_url
        if self.output_root:
            env["SP_OUTPUT_ROOT"] = str(self.output_root)
        if self.profile_path:
            env["SP_PROFILE"] = str(self.profile_path)
        if self.metrics_port:
            env["SP_METRICS_PORT"] = str(self.metrics_port)
        return env
