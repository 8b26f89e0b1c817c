"""Real redis-server processes on loopback: free ports, the binary, ACL users, TLS certificates.

tests/support/sentinel.py builds its master, replica and Sentinels from these.

The certificates come from the `openssl` CLI (the project has no `cryptography` dependency): a CA and a
server certificate it signs, valid for 127.0.0.1 and localhost, so clients verify the server with
hostname checking on, as they would in production. `standalone_redis` starts one plain server (no
Sentinel) with an ACL user and, when given certificates, TLS only.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from tests.support import wait_until

CERT_DAYS = "2"
PORT_RANGE = (20000, 60000)


def random_free_port() -> int:
    """A port in PORT_RANGE that nothing on 127.0.0.1 listens on right now."""
    for _ in range(200):
        port = random.randint(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in 20000-60000")


def redis_server_binary() -> str:
    """`redis-server` (or `valkey-server`) from PATH: these tests need a real server binary."""
    for name in ("redis-server", "valkey-server"):
        if found := shutil.which(name):
            return found
    raise RuntimeError("no redis-server or valkey-server on PATH: the real-server tests need one")


@dataclass(frozen=True)
class TlsFiles:
    """A CA certificate and a server certificate and key it signed (PEM files)."""

    ca: Path
    cert: Path
    key: Path

    def server_args(self, port: int) -> list[str]:
        """redis-server options: TLS only on `port`, the plain port closed, no client certificate asked."""
        return [
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def client_kwargs(self) -> dict[str, Any]:
        """redis-py arguments that trust this CA and nothing else."""
        return {"ssl": True, "ssl_ca_certs": str(self.ca), "ssl_cert_reqs": "required"}

    def url_query(self) -> str:
        """The query a `rediss://` or `rediss+sentinel://` URL carries to trust this CA."""
        return f"ssl_ca_certs={quote(str(self.ca), safe='/')}&ssl_cert_reqs=required"


def make_tls_files(directory: Path) -> TlsFiles:
    """A fresh CA and a server certificate for 127.0.0.1/localhost in `directory`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("no openssl on PATH: the TLS tests make their certificates with it")
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca_key, request, extensions = directory / "ca.key", directory / "server.csr", directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", files.ca,
         "-days", CERT_DAYS, "-subj", "/CN=sp-scheduler test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", files.key, "-out", request, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", request, "-CA", files.ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", files.cert, "-days", CERT_DAYS, "-extfile", extensions],
    ]  # fmt: skip
    for step in steps:
        subprocess.run([openssl, *map(str, step)], check=True, capture_output=True)
    files.key.chmod(0o600)
    return files


def acl_user_args(username: str, password: str) -> list[str]:
    """redis-server options: the default user off, `username` allowed everything with `password`."""
    return ["--user", "default", "off", "--user", username, "on", f">{password}", "~*", "&*", "+@all"]


@dataclass
class StandaloneRedis:
    """One server with an ACL user, TLS-only when it has certificates."""

    port: int
    username: str
    password: str
    tls: TlsFiles | None
    popen: subprocess.Popen[bytes]

    def url(self, db: int = 0, *, ca_in_url: bool = True) -> str:
        """`redis://` or `rediss://` with the ACL user; `ca_in_url=False` leaves the CA to the system's trust."""
        credentials = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
        if self.tls is None:
            return f"redis://{credentials}@127.0.0.1:{self.port}/{db}"
        query = f"?{self.tls.url_query()}" if ca_in_url else ""
        return f"rediss://{credentials}@127.0.0.1:{self.port}/{db}{query}"

    def client(self) -> redis.Redis:
        tls = self.tls.client_kwargs() if self.tls else {}
        return redis.Redis(
            host="127.0.0.1", port=self.port, username=self.username, password=self.password, socket_timeout=2, **tls
        )


@contextmanager
def standalone_redis(
    directory: Path, *, username: str, password: str, tls: TlsFiles | None = None
) -> Iterator[StandaloneRedis]:
    """A running redis-server with an ACL user (and TLS if `tls`), stopped afterwards."""
    port = random_free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [redis_server_binary(), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "", "--appendonly", "no"]
    args += acl_user_args(username, password)
    args += tls.server_args(port) if tls else ["--port", str(port)]
    with (directory / "redis.log").open("ab") as log:
        popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = StandaloneRedis(port, username, password, tls, popen)
    try:
        wait_until(lambda: _answers(server), timeout=15, message=f"redis-server on {port} did not start")
        yield server
    finally:
        popen.terminate()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=10)


def _answers(server: StandaloneRedis) -> bool:
    if server.popen.poll() is not None:
        raise RuntimeError(f"redis-server on {server.port} exited with {server.popen.returncode}")
    client = server.client()
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
