"""redis-py clients for every Redis user (beat's publisher, workers, the CLI), from the one URL reading.

For a Sentinel URL the client is `Sentinel(...).master_for(...)`: its pool asks the Sentinels for the
master's address on each new connection, so a client outlives a failover (the command that meets the
dead master fails; the next one reaches the promoted replica). Plain URLs go to `Redis.from_url`.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from sp_scheduler.redis_url import is_sentinel_url, parse_sentinel_url


class PlainSentinel(Sentinel):
    """redis-py's Sentinel whose "no master" error is one short line per Sentinel, not each client's repr."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        try:
            host, port = super().discover_master(service_name)
        except MasterNotFoundError:
            reasons = "; ".join(self._why_not(node, service_name) for node in self.sentinels)
            raise MasterNotFoundError(f"no Sentinel reports a master named {service_name!r} ({reasons})") from None
        return str(host), int(port)

    @staticmethod
    def _why_not(node: redis.Redis, service_name: str) -> str:
        """What one Sentinel says about the master (asked again, only once discovery has failed)."""
        kwargs = node.connection_pool.connection_kwargs
        where = f"{kwargs.get('host')}:{kwargs.get('port')}"
        try:
            masters = node.sentinel_masters()
        except redis.RedisError as exc:
            return f"{where}: {exc}"
        state = masters.get(service_name) if isinstance(masters, dict) else None
        if state is None:
            return f"{where}: monitors no master of that name"
        return f"{where}: reports it {'down' if state.get('is_odown') or state.get('is_sdown') else 'not usable'}"


def redis_client(url: str, **options: Any) -> redis.Redis:
    """A redis-py client for `url`; `options` (timeouts, decode_responses, ...) apply to every connection.

    For a Sentinel URL the client's pool asks the Sentinels for the master on each new connection, so a
    client outlives a failover: the command that meets the dead master fails, the next one reaches the
    new master.
    """
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    target = parse_sentinel_url(url)
    sentinel = PlainSentinel(list(target.hosts), sentinel_kwargs=target.sentinel_kwargs(**options), **options)
    client: redis.Redis = sentinel.master_for(target.master_name, **target.master_kwargs())
    return client


def master_address(url: str, timeout: float = 3.0) -> tuple[str, int]:
    """The master's address as the Sentinels report it now (redis.sentinel.MasterNotFoundError if none)."""
    target = parse_sentinel_url(url)
    options: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    sentinel = PlainSentinel(list(target.hosts), sentinel_kwargs=target.sentinel_kwargs(**options), **options)
    try:
        host, port = sentinel.discover_master(target.master_name)
    finally:
        for node in sentinel.sentinels:
            node.close()
    return str(host), int(port)
