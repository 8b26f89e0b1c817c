"""Postgres failover: from kill -9 of the primary to runs recorded on the promoted standby, and what was lost.

    python bench/postgres_failover.py [--promote-after 0,10,20] [--runs-before 10] [--runs-after 10] [--async]

Each round builds a fresh primary and streaming standby on loopback (tests/support/postgres_pair.py:
initdb, pg_basebackup -R, synchronous replication unless --async), runs `sp-scheduler db migrate`, a
beat and a worker (two processes) on the multi-host URL
`postgresql://...@127.0.0.1:P1,127.0.0.1:P2/sp_failover?target_session_attrs=read-write`, with a
`tally` job every second that queries through `ctx.db_pool` and appends its run id to a side file.
Once --runs-before runs are recorded, the primary's whole process tree is SIGKILLed; the standby is
promoted (`pg_ctl promote`) --promote-after seconds later, standing in for a failover manager's
detection time (Patroni's default TTL is 30 s). The round ends once --runs-after runs are recorded on
the new primary and every run claimed before the kill is closed (its outcome or the reaper's `lost`).

Printed per round: kill -> promoted, kill -> first run recorded on the new primary, promoted -> first
run, finished runs (side file) missing from the ledger, runs left `running`, and the ledger by status.
Target: kill -> first run <= 30 s whenever the promotion itself comes within 20 s, no outcome lost.
Redis is a leased database of the test Redis (tests/support/servers.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import servers  # noqa: E402
from tests.support.failover import FailoverReport, run_failover  # noqa: E402
from tests.support.postgres_pair import postgres_pair  # noqa: E402

TARGET_SECONDS = 30.0


def one_round(redis_url: str, promote_after: float, args: argparse.Namespace) -> FailoverReport:
    with (
        tempfile.TemporaryDirectory(prefix="sp-failover-bench-") as work,
        postgres_pair(synchronous=not args.asynchronous) as pair,
    ):
        servers.flush_redis_db(redis_url)
        return run_failover(
            pair,
            redis_url,
            Path(work),
            runs_before=args.runs_before,
            promote_after=promote_after,
            runs_after=args.runs_after,
            timeout=120 + promote_after,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--promote-after", default="0,10,20", help="seconds from the kill to the promotion, per round")
    parser.add_argument("--runs-before", type=int, default=10)
    parser.add_argument("--runs-after", type=int, default=10)
    parser.add_argument("--async", dest="asynchronous", action="store_true", help="asynchronous replication")
    args = parser.parse_args()
    delays = [float(value) for value in args.promote_after.split(",")]
    replication = "asynchronous" if args.asynchronous else "synchronous"
    print(f"postgres failover bench: {replication} replication, load average {os.getloadavg()[0]:.2f}")
    failed = False
    with (
        tempfile.TemporaryDirectory(prefix="sp-failover-redis-") as redis_dir,
        servers.redis_server(Path(redis_dir)) as server,
        servers.leased_redis_db(server) as redis_url,
    ):
        for delay in delays:
            report = one_round(redis_url, delay, args)
            after_promotion = report.seconds_kill_to_first_run - report.seconds_kill_to_promoted
            within = report.seconds_kill_to_first_run <= TARGET_SECONDS or delay > 20
            ok = within and not report.outcomes_missing and not report.stuck_running
            failed |= not ok
            print(f"\n-- promotion {delay:g} s after the kill: {'PASS' if ok else 'FAIL'}")
            print("\n".join(report.lines()))
            print(f"promoted -> first run on the new primary {after_promotion:.2f} s")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
