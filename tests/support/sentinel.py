"""A Redis master, a replica and three Sentinels on loopback, for failover tests and the failover bench.

Every server runs in the foreground as a child of this process (so it can be killed with SIGKILL
like a crashed host), on a random free port in 20000-60000, with its files in a directory of the
caller's. The master and replica require `password`; the Sentinels require `sentinel_password`, so
the two credentials of a `redis+sentinel://` URL are both exercised. With `username` and
`sentinel_username` those are ACL users (the default user off), and with `tls` every server,
replication and Sentinel link included, speaks TLS only. `SentinelCluster.url()` is the URL
sp-scheduler is given.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support import wait_until
from tests.support.redis_server import TlsFiles, acl_user_args, random_free_port, redis_server_binary

MASTER_NAME = "spmaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


@dataclass
class Node:
    """One server process: a data node (master or replica) or a Sentinel."""

    name: str
    port: int
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.popen = subprocess.Popen(self.args, stdout=log_file, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save, connections reset, as when a host dies."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class SentinelCluster:
    """The servers of one failover setup and the URL that names them."""

    directory: Path
    password: str = "master-pw"
    sentinel_password: str = "sentinel-pw"
    username: str | None = None  # the master's ACL user (None: the default user with `password`)
    sentinel_username: str | None = None  # the Sentinels' ACL user
    tls: TlsFiles | None = None
    data: dict[int, Node] = field(default_factory=dict)  # port -> master or replica
    sentinels: list[Node] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)
        query = f"sentinel_password={self.sentinel_password}"
        if self.sentinel_username:
            query = f"sentinel_username={self.sentinel_username}&{query}"
        if self.tls:
            query += f"&{self.tls.url_query()}"
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        return f"{scheme}://{self.username or ''}:{self.password}@{hosts}/{MASTER_NAME}/{db}?{query}"

    def data_client(self, port: int) -> redis.Redis:
        tls = self.tls.client_kwargs() if self.tls else {}
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            username=self.username,
            password=self.password,
            socket_timeout=2,
            socket_connect_timeout=2,
            **tls,
        )

    def sentinel_client(self, port: int) -> redis.Redis:
        tls = self.tls.client_kwargs() if self.tls else {}
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            username=self.sentinel_username,
            password=self.sentinel_password,
            socket_timeout=1,
            socket_connect_timeout=1,
            **tls,
        )

    def reported_master(self) -> int | None:
        """The master's port as a majority of the Sentinels report it (None while they disagree or are down)."""
        seen: dict[int, int] = {}
        for node in self.sentinels:
            client = self.sentinel_client(node.port)
            try:
                reply = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            except redis.RedisError:
                continue
            finally:
                client.close()
            if reply:
                port = int(reply[1])
                seen[port] = seen.get(port, 0) + 1
        winners = [port for port, votes in seen.items() if votes * 2 > len(self.sentinels)]
        return winners[0] if winners else None

    def role(self, port: int) -> str | None:
        client = self.data_client(port)
        try:
            return str(client.info("replication")["role"])
        except redis.RedisError:
            return None
        finally:
            client.close()

    def master_port(self) -> int:
        """The port of the running master that the Sentinels report (waits for them to agree)."""

        def agreed() -> int | None:
            port = self.reported_master()
            return port if port in self.data and self.data[port].running and self.role(port) == "master" else None

        return wait_until(agreed, timeout=30, interval=0.05, message="the Sentinels agree on no running master")

    def wait_promoted(self, old_port: int, timeout: float = 30.0) -> int:
        """The port of the new master once the Sentinels report one other than `old_port` and it accepts writes."""

        def promoted() -> int | None:
            port = self.reported_master()
            return port if port not in (None, old_port) and self.role(port) == "master" else None

        return wait_until(promoted, timeout=timeout, interval=0.02, message="no replica was promoted")

    def wait_replicas_in_sync(self, timeout: float = 30.0) -> None:
        """Wait until the master reports every other running data node as a connected, caught-up replica."""
        master = self.master_port()
        expected = sum(1 for port, node in self.data.items() if port != master and node.running)

        def in_sync() -> bool:
            client = self.data_client(master)
            try:
                info = client.info("replication")
            except redis.RedisError:
                return False
            finally:
                client.close()
            offset = int(info.get("master_repl_offset", 0))
            replicas = [info[key] for key in info if key.startswith("slave") and isinstance(info[key], dict)]
            online = [r for r in replicas if r.get("state") == "online" and int(r.get("offset", -1)) >= offset - 1024]
            return len(online) >= expected

        wait_until(in_sync, timeout=timeout, interval=0.05, message="the replicas did not catch up with the master")

    def restart(self, port: int) -> None:
        """Start a killed data node again on its port; the Sentinels make it a replica of the current master."""
        self.data[port].start()
        wait_until(lambda: self.role(port) is not None, timeout=15, message=f"redis on {port} did not come back")

    def lpush_calls(self, port: int) -> int:
        """LPUSH commands the node has executed (run messages are LPUSHed): how a test sees publishing."""
        client = self.data_client(port)
        try:
            stats = client.info("commandstats").get("cmdstat_lpush", {})
        finally:
            client.close()
        return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data.values()]:
            with suppress(Exception):
                node.stop()


def _data_node(binary: str, cluster: SentinelCluster, name: str, port: int, replica_of: int | None) -> Node:
    node_dir = cluster.directory / name
    node_dir.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--bind", "127.0.0.1",
        "--dir", str(node_dir),
        "--save", "",
        "--appendonly", "no",
        "--masterauth", cluster.password,
        "--repl-diskless-sync", "yes",
        "--repl-diskless-sync-delay", "0",
    ]  # fmt: skip
    if cluster.username:
        args += [*acl_user_args(cluster.username, cluster.password), "--masteruser", cluster.username]
    else:
        args += ["--requirepass", cluster.password]
    if cluster.tls:
        args += [*cluster.tls.server_args(port), "--tls-replication", "yes"]
    else:
        args += ["--port", str(port)]
    if replica_of is not None:
        args += ["--replicaof", "127.0.0.1", str(replica_of)]
    return Node(name, port, args, cluster.directory / f"{name}.log")


def _sentinel_node(binary: str, directory: Path, index: int, master_port: int, cluster: SentinelCluster) -> Node:
    port = random_free_port()
    node_dir = directory / f"sentinel{index}"
    node_dir.mkdir(parents=True, exist_ok=True)
    conf = node_dir / "sentinel.conf"  # Sentinel rewrites its config file, so each has its own
    conf.write_text("\n".join([*_sentinel_config(cluster, port, node_dir, master_port), ""]))
    return Node(f"sentinel{index}", port, [binary, str(conf), "--sentinel"], directory / f"sentinel{index}.log")


def _sentinel_config(cluster: SentinelCluster, port: int, node_dir: Path, master_port: int) -> list[str]:
    """One Sentinel's configuration: its own login (ACL user or password, also used between Sentinels),
    the master's login, TLS when the cluster has it, and the short failover timings of the tests."""
    lines = ["bind 127.0.0.1", f"dir {node_dir}", f"sentinel sentinel-pass {cluster.sentinel_password}"]
    if cluster.sentinel_username:
        lines += [
            "user default off",
            f"user {cluster.sentinel_username} on >{cluster.sentinel_password} ~* &* +@all",
            f"sentinel sentinel-user {cluster.sentinel_username}",
        ]
    else:
        lines.append(f"requirepass {cluster.sentinel_password}")
    if cluster.tls:
        options = cluster.tls.server_args(port)
        lines += [f"{name[2:]} {value}" for name, value in zip(options[::2], options[1::2], strict=True)]
        lines.append("tls-replication yes")  # TLS to the master, the replicas and the other Sentinels
    else:
        lines.append(f"port {port}")
    lines.append(f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2")
    if cluster.username:
        lines.append(f"sentinel auth-user {MASTER_NAME} {cluster.username}")
    return [
        *lines,
        f"sentinel auth-pass {MASTER_NAME} {cluster.password}",
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
    ]


@contextmanager
def sentinel_cluster(
    directory: Path,
    *,
    replicas: int = 1,
    username: str | None = None,
    sentinel_username: str | None = None,
    tls: TlsFiles | None = None,
) -> Iterator[SentinelCluster]:
    """A master, `replicas` replicas and three Sentinels, all up and agreeing; everything stopped afterwards."""
    binary = redis_server_binary()
    cluster = SentinelCluster(directory, username=username, sentinel_username=sentinel_username, tls=tls)
    try:
        master_port = random_free_port()
        master = _data_node(binary, cluster, "redis0", master_port, None)
        cluster.data[master_port] = master
        master.start()
        wait_until(lambda: cluster.role(master_port) == "master", timeout=15, message="the master did not start")
        for index in range(1, replicas + 1):
            port = random_free_port()
            cluster.data[port] = _data_node(binary, cluster, f"redis{index}", port, master_port)
            cluster.data[port].start()
        # Sentinels learn the replicas from the master's INFO, read at once and then every 10 s:
        # started before the replicas attach, they would take a further 10 s to find them.
        wait_until(
            lambda: _attached_replicas(cluster, master_port) >= replicas,
            timeout=15,
            message="the replicas did not attach to the master",
        )
        for index in range(3):
            node = _sentinel_node(binary, directory, index, master_port, cluster)
            cluster.sentinels.append(node)
            node.start()
        cluster.master_port()
        cluster.wait_replicas_in_sync()
        _wait_sentinels_know_replicas(cluster, replicas)
        yield cluster
    finally:
        cluster.stop()


def _attached_replicas(cluster: SentinelCluster, master_port: int) -> int:
    client = cluster.data_client(master_port)
    try:
        return int(client.info("replication").get("connected_slaves", 0))
    except redis.RedisError:
        return 0
    finally:
        client.close()


def _wait_sentinels_know_replicas(cluster: SentinelCluster, replicas: int) -> None:
    """Each Sentinel has discovered the replicas and the other Sentinels: a failover can start at once."""

    def ready() -> bool:
        for node in cluster.sentinels:
            client = cluster.sentinel_client(node.port)
            try:
                state = client.execute_command("SENTINEL", "MASTER", MASTER_NAME)
            except redis.RedisError:
                return False
            finally:
                client.close()
            fields = dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) else state
            known = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
            if int(known.get("num-slaves", 0)) < replicas or int(known.get("num-other-sentinels", 0)) < 2:
                return False
        return True

    wait_until(ready, timeout=30, interval=0.1, message="the Sentinels did not discover each other and the replicas")


@dataclass(frozen=True)
class Failover:
    """One kill of the master, timed from the kill (seconds)."""

    killed_at: float  # wall clock
    old_port: int
    new_port: int
    promoted_after: float  # the Sentinels report the new master
    first_publish_after: float  # the first run message LPUSHed onto the new master


def fail_over(cluster: SentinelCluster, timeout: float = 30.0) -> Failover:
    """SIGKILL the master, wait for a replica's promotion and for the first message published to it.

    "Published" is seen on the new master itself: its LPUSH count (run messages are LPUSHed) grows past
    what it had once its link to the dead master was down, so nothing replicated is counted.
    """
    old = cluster.master_port()
    killed_at = time.monotonic()
    wall = time.time()
    cluster.data[old].kill()
    baselines = {port: _lpush_once_cut_off(cluster, port) for port, node in cluster.data.items() if node.running}
    new = cluster.wait_promoted(old, timeout=timeout)
    promoted = time.monotonic()
    wait_until(
        lambda: cluster.lpush_calls(new) > baselines[new],
        timeout=timeout,
        interval=0.01,
        message="nothing was published to the new master",
    )
    published = time.monotonic()
    return Failover(wall, old, new, promoted - killed_at, published - killed_at)


def _lpush_once_cut_off(cluster: SentinelCluster, port: int) -> int:
    """The replica's LPUSH count once it reports its master link down (nothing more is in flight)."""

    def cut_off() -> bool:
        client = cluster.data_client(port)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return info.get("role") == "master" or info.get("master_link_status") == "down"

    wait_until(cut_off, timeout=15, interval=0.01, message=f"replica {port} did not notice its master died")
    return cluster.lpush_calls(port)
