"""Secrets out of sight: the one place that makes Postgres and Redis URLs safe to print, log or export.

Every message, log line, metric label and `--json` field that names a server goes through here:

- `redact_url(url)`: the whole URL, its password replaced by `***` (userinfo, a libpq `password=`
  key, or a `password` / `sentinel_password` query parameter);
- `postgres_where(url)` / `redis_where(url)`: the short `host:port/db` form error messages use
  (for a Sentinel URL, `master/db via Sentinel host:port,...`), and `redis_problem(url, error)`
  the whole "cannot reach Redis at ...: why" line;
- `redact_text(text, *urls)`: a library's error text with those URLs' secrets masked, for messages
  that quote an exception which may have quoted the URL;
- `url_host(url)` / `redact_capability(text, url)`: for URLs whose path or query *is* the secret (a
  webhook's token), the host alone may be shown, and the URL, path and query are masked in text.

The rules err towards masking too much: a URL too broken to parse is never echoed back.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from sp_scheduler.redis_url import RedisUrlError, is_sentinel_url, parse_sentinel_url

MASK = "***"
CAPABILITY_MASK = "<redacted>"
TOKEN_LENGTH = 12  # a webhook path segment this long is taken for a token (Slack's are 24, Discord's 68)
UNPARSEABLE = "<not a URL>"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_QUERY_SECRET = re.compile(r"([?&](?:password|sentinel_password)=)([^&#]*)", re.IGNORECASE)
_CONNINFO_SECRET = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", re.IGNORECASE)


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme://, userinfo, rest) for URL forms with an `@`; the last `@` ends the userinfo, as parsers read it."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return None
    body = url[scheme.end() :]
    userinfo, at, rest = body.rpartition("@")
    if not at:
        return None
    return scheme.group(0), userinfo, rest


def secrets_of(url: str) -> list[str]:
    """The secret strings in `url`, raw and percent-decoded, longest first (to mask them in other text)."""
    found: list[str] = []
    parts = _split_userinfo(url)
    if parts is not None:
        _, userinfo, _ = parts
        _, sep, password = userinfo.partition(":")
        if sep and password:
            found.append(password)
    found += [match.group(2) for match in _QUERY_SECRET.finditer(url) if match.group(2)]
    if _SCHEME.match(url) is None:
        found += [match.group(2).strip("'") for match in _CONNINFO_SECRET.finditer(url) if match.group(2).strip("'")]
    decoded = [unquote(secret) for secret in found]
    return sorted({*found, *decoded} - {""}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """`url` with every password replaced by `***`; the scheme, user, hosts, database and options stay.

    Text that is neither a URL (`scheme://...`) nor a libpq `key=value` string is not echoed at all:
    nothing in it can be told apart from a password (`user:pw@host` without its scheme, say).
    """
    if _SCHEME.match(url) is None and "=" not in url:
        return UNPARSEABLE
    parts = _split_userinfo(url)
    if parts is not None:
        scheme, userinfo, rest = parts
        user, sep, _ = userinfo.partition(":")
        url = f"{scheme}{user}:{MASK}@{rest}" if sep else url
    url = _QUERY_SECRET.sub(rf"\g<1>{MASK}", url)
    if _SCHEME.match(url) is None:
        url = _CONNINFO_SECRET.sub(rf"\g<1>{MASK}", url)
    return url


def redact_text(text: str, *urls: str) -> str:
    """`text` with every secret of `urls` masked: for library errors that may quote a URL whole."""
    for url in urls:
        if url:
            text = text.replace(url, redact_url(url))
            for secret in secrets_of(url):
                text = text.replace(secret, MASK)
    return text


def redis_where(url: str) -> str:
    """`host:port/db` of a Redis URL for messages; never the password, never a traceback on a bad URL.

    A Sentinel URL reads `master_name/db via Sentinel host:port,host:port`.
    """
    if is_sentinel_url(url):
        try:
            target = parse_sentinel_url(url)
        except RedisUrlError:
            return "<malformed Redis URL>"
        hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in target.hosts)
        return redact_text(f"{target.master_name}/{target.db} via Sentinel {hosts}", url)
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        return "<malformed Redis URL>"
    if not parts.scheme or (not parts.hostname and not parts.path):
        return "<malformed Redis URL>"
    if parts.scheme == "unix":
        return redact_text(parts.path, url) or "<malformed Redis URL>"
    # A password with an unescaped "/" or "@" ends up in what parsers call the host or path: mask it there too.
    return redact_text(f"{parts.hostname or '?'}:{port}{parts.path or '/0'}", url)


def redis_problem(url: str, error: BaseException, failed: str = "cannot reach") -> str:
    """`cannot reach Redis at host:port/db: <error>`, the error's copy of any secret of `url` masked."""
    return f"{failed} Redis at {redis_where(url)}: {redact_text(str(error), url)}"


def postgres_where(url: str) -> str:
    """`host:port/dbname` (or `socket-dir:port/dbname`) of a Postgres URL or conninfo; never the password.

    A multi-host URL (`host1:5432,host2:5433`, libpq's failover list) names every server in its order:
    `host1:5432,host2:5433/dbname`.
    """
    import psycopg  # noqa: PLC0415 -- settings.py (offline) imports this module
    from psycopg import conninfo  # noqa: PLC0415 -- settings.py (offline) imports this module

    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<malformed database URL>"
    hosts = str(params.get("host") or params.get("hostaddr") or "localhost").split(",")
    ports = str(params.get("port") or "").split(",")
    if len(ports) != len(hosts):  # one port (or none) for every host, as libpq reads it
        ports = ports[:1] * len(hosts)
    servers = ",".join(f"{host or 'localhost'}:{port or 5432}" for host, port in zip(hosts, ports, strict=True))
    dbname = str(params.get("dbname") or params.get("user") or "postgres")
    return redact_text(f"{servers}/{dbname}", url)


def url_host(url: str) -> str:
    """The host of a URL whose path or query is a secret (a webhook): all of it that may be shown."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def capability_secret(url: str) -> str:
    """The part of such a URL that must never be shown: its path (the whole URL when it has none)."""
    try:
        return urlsplit(url).path or url
    except ValueError:
        return url


def redact_capability(text: str, url: str) -> str:
    """`text` with the URL, its path and its query masked: for a response or log line quoting a webhook.

    A response may also quote the token alone, so the path's last segment and any segment as long as a
    token (TOKEN_LENGTH or more) are masked on their own too.
    """
    try:
        parts = urlsplit(url)
        segments = [s for s in parts.path.split("/") if s]
        tokens = [s for i, s in enumerate(segments) if i == len(segments) - 1 or len(s) >= TOKEN_LENGTH]
        secrets = [url, parts.path, parts.query, *tokens]
    except ValueError:
        secrets = [url]
    for secret in secrets:
        if len(secret) > 1:
            text = text.replace(secret, CAPABILITY_MASK)
    return text
