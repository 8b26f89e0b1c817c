"""The Redis URL, read once: a plain server (`redis://`, `rediss://`, `unix://`) or a Sentinel-managed master.

`redis+sentinel://[[user]:password@]host:port[,host:port...]/master_name[/db][?query]`
(`rediss+sentinel://` for TLS to the Sentinels and the master) names the Sentinels to ask, the master
name they monitor, the database and the master's credentials (userinfo). The query holds what differs
for the Sentinels (`sentinel_username`, `sentinel_password`: their own ACL user and password) and, with
`rediss+sentinel://`, the TLS files and checks (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`,
`ssl_cert_reqs`), which apply to the Sentinels and the master alike, as one CA signs both in practice.

Every Redis user builds from this one reading, so a failover looks the same to all of them:
`redis_clients.py` makes redis-py clients from it, `celery_broker` gives Celery/kombu its broker
settings and `redbeat_settings` RedBeat's. This module imports no Redis client (settings.py checks
URLs with it in commands that need no server).

Errors name what is wrong and never echo a password (messages go through redact.py).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
SENTINEL_USERNAME_PARAM = "sentinel_username"
SENTINEL_PASSWORD_PARAM = "sentinel_password"
# The names redis-py and kombu read from a rediss:// URL's query, so both URL forms take the same ones.
TLS_FILE_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
CERT_REQS_PARAM = "ssl_cert_reqs"
CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
KNOWN_PARAMS = (SENTINEL_USERNAME_PARAM, SENTINEL_PASSWORD_PARAM, *TLS_FILE_PARAMS, CERT_REQS_PARAM)
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_FORM = (
    "redis+sentinel://[[user]:password@]host:port[,host:port...]/master_name[/db]"
    "[?sentinel_username=...&sentinel_password=...]"
)


class RedisUrlError(ValueError):
    """A Redis URL that cannot be used; the message names what is wrong and holds no secret."""


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """A Sentinel-managed master: where to ask, what to ask for, and how to log in."""

    hosts: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    tls_files: tuple[tuple[str, str], ...] = ()  # (ssl_ca_certs | ssl_certfile | ssl_keyfile, path)
    cert_reqs: str = "required"

    def ssl_options(self) -> dict[str, Any]:
        """redis-py's TLS arguments (also kombu's `broker_use_ssl` and RedBeat's `redbeat_redis_use_ssl`)."""
        return {CERT_REQS_PARAM: CERT_REQS[self.cert_reqs], **dict(self.tls_files)}

    def master_kwargs(self) -> dict[str, Any]:
        """Connection arguments for the master (and, through Sentinel, for any replica)."""
        kwargs: dict[str, Any] = {"db": self.db}
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        if self.tls:
            kwargs.update(ssl=True, **self.ssl_options())
        return kwargs

    def sentinel_kwargs(self, **socket_options: Any) -> dict[str, Any]:
        """Connection arguments for the Sentinels themselves (their ACL user and password are not the master's)."""
        kwargs: dict[str, Any] = {key: value for key, value in socket_options.items() if key.startswith("socket_")}
        if self.sentinel_username:
            kwargs["username"] = self.sentinel_username
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        if self.tls:
            kwargs.update(ssl=True, **self.ssl_options())
        return kwargs


def is_sentinel_url(url: str) -> bool:
    """Whether `url` names a Sentinel-managed master (by its scheme)."""
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a `redis+sentinel://` / `rediss+sentinel://` URL; RedisUrlError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise RedisUrlError(f"not a Sentinel URL (expected {SENTINEL_FORM})")
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        hostlist = netloc
    username, has_password, password = userinfo.partition(":")
    hosts = tuple(_host_port(item, number) for number, item in enumerate(hostlist.split(","), start=1))
    segments = [unquote(part) for part in path.split("/")] if path else []
    if not segments or not segments[0]:
        raise RedisUrlError("no master name: the path must be /master_name[/db]")
    if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise RedisUrlError("the path after the master name must be a database number: /master_name[/db]")
    params = {name: values[-1] for name, values in parse_qs(query, keep_blank_values=True).items()}
    tls = SENTINEL_SCHEMES[scheme.lower()]
    _check_params(params, tls)
    return SentinelUrl(
        hosts=hosts,
        master_name=segments[0],
        db=int(segments[1]) if len(segments) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) if has_password and password else None,
        sentinel_username=params.get(SENTINEL_USERNAME_PARAM) or None,
        sentinel_password=params.get(SENTINEL_PASSWORD_PARAM) or None,
        tls=tls,
        tls_files=tuple((name, params[name]) for name in TLS_FILE_PARAMS if params.get(name)),
        cert_reqs=params.get(CERT_REQS_PARAM) or "required",
    )


def _check_params(params: dict[str, str], tls: bool) -> None:
    """RedisUrlError for a query parameter that is unknown, has a bad value, or asks for TLS without TLS."""
    unknown = sorted(set(params) - set(KNOWN_PARAMS))
    if unknown:
        raise RedisUrlError(f"unknown query parameter {unknown[0]!r} (understood: {', '.join(KNOWN_PARAMS)})")
    tls_params = [name for name in (*TLS_FILE_PARAMS, CERT_REQS_PARAM) if name in params]
    if tls_params and not tls:
        raise RedisUrlError(f"query parameter {tls_params[0]!r} needs TLS: use rediss+sentinel://")
    reqs = params.get(CERT_REQS_PARAM)
    if reqs is not None and reqs not in CERT_REQS:
        raise RedisUrlError(f"{CERT_REQS_PARAM} must be one of {', '.join(CERT_REQS)}")


def _host_port(item: str, number: int) -> tuple[str, int]:
    """One `host[:port]` of the host list ([v6] literals allowed); the port defaults to 26379.

    Errors name the host by its place in the list, never its text: a password with an unescaped `/`
    ends up here, and must not be echoed.
    """
    if not item:
        raise RedisUrlError("no Sentinel host: expected host:port[,host:port...] before the master name")
    if item.startswith("["):
        host, bracket, after = item[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise RedisUrlError(f"Sentinel host {number} is malformed: an IPv6 address goes in [brackets]")
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise RedisUrlError("a Sentinel host is empty: expected host:port[,host:port...]")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(
            f"Sentinel host {number} has a bad port: expected a number 1-65535 "
            "(a password with '/', '@' or ',' must be percent-encoded)"
        )
    return host, int(port_text)


def celery_broker(url: str, **socket_options: Any) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(broker URL, extra transport options, broker_use_ssl) for Celery/kombu.

    A Sentinel URL becomes kombu's form: one `sentinel://` URL per Sentinel joined by `;` (each with
    the master's credentials and the db), `master_name`, and `sentinel_kwargs` for the Sentinels' ACL
    user, password and TLS; `broker_use_ssl` carries the master's TLS options.

    A plain `rediss://` URL gets `broker_use_ssl` too: kombu turns TLS on from the URL only when its
    query has `ssl_*` parameters, so with the transport named explicitly (celery_app.py) a bare
    `rediss://` would connect in plain text. The URL's own `ssl_*` parameters replace this default.
    """
    if not is_sentinel_url(url):
        return url, {}, {CERT_REQS_PARAM: ssl.CERT_REQUIRED} if url.lower().startswith("rediss://") else None
    target = parse_sentinel_url(url)
    credentials = ""
    if target.username or target.password:
        credentials = f"{quote(target.username or '', safe='')}:{quote(target.password or '', safe='')}@"
    broker = ";".join(f"sentinel://{credentials}{_netloc(host, port)}/{target.db}" for host, port in target.hosts)
    options: dict[str, Any] = {
        "master_name": target.master_name,
        "sentinel_kwargs": target.sentinel_kwargs(**socket_options),
    }
    return broker, options, target.ssl_options() if target.tls else None


def redbeat_settings(url: str, **socket_options: Any) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """(redbeat_redis_url, extra redbeat_redis_options, redbeat_redis_use_ssl) for RedBeat's client."""
    if not is_sentinel_url(url):
        return url, {}, None
    target = parse_sentinel_url(url)
    options: dict[str, Any] = {
        "sentinels": list(target.hosts),
        "service_name": target.master_name,
        "db": target.db,
        "sentinel_kwargs": target.sentinel_kwargs(**socket_options),
    }
    if target.username:
        options["username"] = target.username
    if target.password:
        options["password"] = target.password
    return "redis-sentinel://", options, target.ssl_options() if target.tls else None


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
