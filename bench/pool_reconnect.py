"""How soon a psycopg_pool serves again after Postgres is back, by its `reconnect_timeout`.

    python bench/pool_reconnect.py [--outages 20,40] [--postgres-url URL]

For each outage length, two one-connection pools (`reconnect_timeout` 10 s, ours, and 300 s,
psycopg_pool's default) reach Postgres through a proxy each (tests/support/proxy.py). The proxy is cut
(open connections dropped, new ones refused) and restored after the outage; a client asks each pool
for a connection every 0.2 s throughout. Printed: the time from the restore to the first query that
succeeds. Within one reconnection attempt psycopg_pool doubles its pause (1, 2, 4, 8, 16, 32 s...),
so with 300 s a server back at 20 s waits for the attempt at ~31 s; with 10 s the attempt is given
up and the next checkout starts a new one at once. Postgres: SP_BENCH_POSTGRES_URL or the local one.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sp_scheduler.store import RECONNECT_TIMEOUT_SECONDS, conninfo_with_defaults  # noqa: E402
from tests.support.proxy import postgres_proxy, through  # noqa: E402

PSYCOPG_POOL_DEFAULT = 300.0
ASK_EVERY = 0.2


def recovery_seconds(url: str, reconnect_timeout: float, outage: float) -> float:
    """Seconds from the proxy's restore to the first successful query through the pool."""
    proxy = postgres_proxy(url)
    pool: ConnectionPool[psycopg.Connection[object]] = ConnectionPool(
        conninfo_with_defaults(through(url, proxy)),
        min_size=1,
        max_size=1,
        kwargs={"autocommit": True},
        reconnect_timeout=reconnect_timeout,
        open=False,
    )
    pool.open(wait=True, timeout=10)
    try:
        proxy.cut()
        cut_at = time.monotonic()
        restored_at: float | None = None
        while True:
            if restored_at is None and time.monotonic() - cut_at >= outage:
                proxy.restore()
                restored_at = time.monotonic()
            try:
                with pool.connection(timeout=1.0) as conn:
                    conn.execute("SELECT 1")
            except (psycopg.OperationalError, PoolTimeout):
                pass
            else:
                if restored_at is not None:
                    return time.monotonic() - restored_at
            time.sleep(ASK_EVERY)  # the client's own pace, as a worker's claims come
    finally:
        pool.close()
        proxy.cut()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outages", default="20,40", help="outage lengths in seconds")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    print(f"pool reconnect after an outage, load average {os.getloadavg()[0]:.2f}")
    for outage in (float(value) for value in args.outages.split(",")):
        results: dict[float, float] = {}

        def measure(timeout: float, outage: float = outage, results: dict[float, float] = results) -> None:
            results[timeout] = recovery_seconds(args.postgres_url, timeout, outage)

        threads = [
            threading.Thread(target=measure, args=(t,)) for t in (RECONNECT_TIMEOUT_SECONDS, PSYCOPG_POOL_DEFAULT)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(
            f"outage {outage:g} s: serving again after the restore: "
            f"reconnect_timeout {RECONNECT_TIMEOUT_SECONDS:g} s {results[RECONNECT_TIMEOUT_SECONDS]:.2f} s, "
            f"{PSYCOPG_POOL_DEFAULT:g} s {results[PSYCOPG_POOL_DEFAULT]:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
