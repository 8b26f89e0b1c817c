"""Redis Sentinel failover under load: the master SIGKILLed several times under two beats and two workers.

    python bench/redis_failover.py [--kills 5] [--between 15] [--secured]

Servers on loopback (tests/support/sentinel.py): a master, a replica and three Sentinels
(down-after-milliseconds 1000, failover-timeout 3000), with a master password and a distinct
Sentinel password (with `--secured`: ACL users on the data nodes and the Sentinels, the default
user off, and TLS only everywhere, replication and Sentinel links included, the URL trusting a
throwaway CA: `rediss+sentinel://`). Two `sp-scheduler beat` and two `sp-scheduler worker -c 2` processes run on the
`redis+sentinel://` URL against a scratch ledger, with a job every second that also appends each
execution to a journal file. Each round waits for the replica to be in sync, SIGKILLs the master,
times the promotion and the first run message published to the new master (its LPUSH count), and
the first execution after the kill; then the killed server is started again (the Sentinels make it
a replica) and the next round begins after `--between` seconds.

At the end every slot from the first kill to after the last recovery is audited: each has a final
ledger row (run, or `missed` with its reason) and the journal shows no slot executed twice.

Targets: kill -> first slot published through the new master <= 15 s (stretch 5 s); 0 duplicates;
every slot accounted for. Postgres: SP_BENCH_POSTGRES_URL (default the local server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import wait_until
from tests.support.processes import ManagedProcess, service_env, start_beat, start_worker, write_config
from tests.support.redis_server import make_tls_files
from tests.support.sentinel import Failover, fail_over, sentinel_cluster
from tests.support.servers import scratch_database
from tests.support.slot_audit import audit_slots, first_run_after, journal_entry

JOB = "journal"
SETTLE_TIMEOUT = 60.0


def runs_after(journal: Path, instant: float, count: int) -> bool:
    lines = journal.read_text().splitlines() if journal.exists() else []
    return sum(1 for line in lines if len(line.split()) == 3 and float(line.split()[2]) > instant) >= count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5, help="times the master is killed")
    parser.add_argument("--between", type=float, default=15.0, help="seconds of normal running between kills")
    parser.add_argument("--secured", action="store_true", help="ACL users and TLS on every server")
    options = parser.parse_args()
    server = os.environ.get("SP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    print(
        f"kills={options.kills} between={options.between:g}s secured={options.secured} cores={os.cpu_count()}"
        f" load={os.getloadavg()[0]:.2f} started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )
    with tempfile.TemporaryDirectory() as directory, scratch_database(server, migrated=True) as database_url:
        tmp = Path(directory)
        logs = tmp / "logs"
        logs.mkdir()
        journal = tmp / "journal.txt"
        tls = make_tls_files(tmp / "tls") if options.secured else None
        user, sentinel_user = ("sp-app", "sp-watcher") if options.secured else (None, None)
        with sentinel_cluster(tmp / "redis", username=user, sentinel_username=sentinel_user, tls=tls) as cluster:
            config = write_config(tmp / "config.yaml", [journal_entry(journal, JOB)])
            env = service_env(database_url, cluster.url(), config)
            processes: list[ManagedProcess] = []
            try:
                processes += [start_worker(name, env, logs, concurrency=2) for name in ("w1", "w2")]
                processes.append(start_beat("beat1", env, logs))
                processes.append(start_beat("beat2", env, logs, lead=False))
                wait_until(lambda: runs_after(journal, time.time() - 60, 3), timeout=60, message="no runs at start")
                rounds: list[tuple[Failover, float | None]] = []
                for number in range(1, options.kills + 1):
                    cluster.wait_replicas_in_sync()
                    failover = fail_over(cluster)
                    wait_until(
                        lambda f=failover: runs_after(journal, f.killed_at + f.first_publish_after, 2),
                        timeout=SETTLE_TIMEOUT,
                        message="no runs after the failover",
                    )
                    first_run = first_run_after(journal, failover.killed_at)
                    run_after = None if first_run is None else first_run - failover.killed_at
                    rounds.append((failover, run_after))
                    print(
                        f"kill {number}: promoted {failover.promoted_after:.2f} s, first slot published via the new"
                        f" master {failover.first_publish_after:.2f} s, first run {run_after or float('nan'):.2f} s"
                        f" after the kill (load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
                    cluster.restart(failover.old_port)
                    time.sleep(options.between)  # normal running before the next kill: the bench's pacing
                first_kill = datetime.fromtimestamp(rounds[0][0].killed_at, UTC) - timedelta(seconds=3)
                end = datetime.now(UTC) - timedelta(seconds=3)
            finally:
                for process in processes:
                    process.stop()
            audit = audit_slots(database_url, JOB, journal, first_kill, end)
            published = [f.first_publish_after for f, _ in rounds]
            promoted = [f.promoted_after for f, _ in rounds]
            first_runs = [r for _, r in rounds if r is not None]
            print(
                f"kill -> promotion: median {statistics.median(promoted):.2f} s, max {max(promoted):.2f} s\n"
                f"kill -> first slot published via the new master: median {statistics.median(published):.2f} s,"
                f" max {max(published):.2f} s (target <= 15 s, stretch 5 s)\n"
                f"kill -> first run: median {statistics.median(first_runs):.2f} s, max {max(first_runs):.2f} s\n"
                f"slots audited: {audit.summary()}\n"
                f"duplicates: {len(audit.duplicates)}; every slot accounted for: {audit.complete}"
                f"; load {os.getloadavg()[0]:.2f}"
            )
            if not audit.complete:
                sys.exit(1)


if __name__ == "__main__":
    main()
