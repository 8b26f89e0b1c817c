"""ACL users and TLS against real servers, in the plain and the Sentinel URL forms.

Each test starts real redis-server processes on loopback (tests/support/redis_server.py and
sentinel.py): the default user is off, so only the ACL users in the URL get in, and with TLS the
servers listen on a TLS port only and the client trusts a throwaway CA named in the URL
(`ssl_ca_certs`, hostname checked). A real worker and beat run a job every second; its run must land
in the Postgres ledger as succeeded, and `sp-scheduler jobs status` must name the Redis in use.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.redis_server import TlsFiles, make_tls_files, standalone_redis
from tests.support.sentinel import MASTER_NAME, sentinel_cluster

pytestmark = pytest.mark.integration

APP_USER, APP_PASSWORD = "sp-app", "app-Pw-7q"
SENTINEL_USER = "sp-watcher"


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


def system_on(database_url: str, redis_url: str, tmp_path: Path) -> System:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    world = System(database_url, redis_url, tmp_path / "config.yaml", log_dir)
    world.configure(
        [{"name": "tick", "extension": "testing", "job": "noop", "schedule": "* * * * * *", "enabled": True}]
    )
    return world


def run_a_scheduled_job(system: System, *secrets: str) -> dict[str, object]:
    """Start a worker and a beat, wait for a scheduled run to succeed, and return `jobs status --json`."""
    try:
        system.worker("w1")
        system.beat("beat1")
        wait_until(
            lambda: any(row["status"] == "succeeded" for row in system.history("tick")),
            timeout=30,
            interval=0.2,
            message="no scheduled run of `tick` succeeded",
        )
        status: dict[str, object] = system.cli_json("jobs", "status")
        for process in system.processes:
            assert process.popen.poll() is None, f"{process.name} exited:\n{process.output()[-3000:]}"
        logs = "".join(process.output() for process in system.processes)
        assert not [secret for secret in secrets if secret in logs]
        return status
    finally:
        for process in system.processes:
            process.stop()


@pytest.mark.parametrize("trust", [None, "url", "system"], ids=["acl", "acl-tls", "acl-tls-system-ca"])
def test_a_job_runs_on_a_plain_redis_with_an_acl_user(
    database_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    trust: str | None,
) -> None:
    """`trust`: no TLS, TLS with the CA in the URL's query, or TLS with a bare `rediss://` URL and the
    CA in the processes' default trust store (SSL_CERT_FILE), as with a certificate from a public CA."""
    files: TlsFiles | None = request.getfixturevalue("tls_files") if trust else None
    if files and trust == "system":
        monkeypatch.setenv("SSL_CERT_FILE", str(files.ca))  # the CLI's and, inherited, the processes' trust
    with standalone_redis(tmp_path / "redis", username=APP_USER, password=APP_PASSWORD, tls=files) as server:
        system = system_on(database_url, server.url(ca_in_url=trust == "url"), tmp_path)
        status = run_a_scheduled_job(system, APP_PASSWORD)
        assert status["redis"] == f"127.0.0.1:{server.port}/0" and status["redis_master"] is None
        human = system.cli("jobs", "status")
    expected = f"redis:    127.0.0.1:{server.port}/0" + (" over TLS" if files else "")
    assert expected in human.output.splitlines(), human.output
    assert APP_PASSWORD not in human.output


@pytest.mark.parametrize("tls", [False, True], ids=["acl", "acl-tls"])
def test_a_job_runs_through_sentinels_with_acl_users(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest, tls: bool
) -> None:
    files: TlsFiles | None = request.getfixturevalue("tls_files") if tls else None
    with sentinel_cluster(tmp_path / "redis", username=APP_USER, sentinel_username=SENTINEL_USER, tls=files) as cluster:
        system = system_on(database_url, cluster.url(), tmp_path)
        assert ("rediss+sentinel://" if tls else "redis+sentinel://") in system.redis_url
        status = run_a_scheduled_job(system, cluster.password, cluster.sentinel_password)
        master = f"127.0.0.1:{cluster.master_port()}"
        assert status["redis_master"] == master
        human = system.cli("jobs", "status")
    expected = f"redis:    master {master} ({MASTER_NAME}, from Sentinel{' over TLS' if tls else ''})"
    assert expected in human.output.splitlines(), human.output
