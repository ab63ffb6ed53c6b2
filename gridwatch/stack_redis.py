"""The local Redis Cluster: N masters from Debian's ``redis-server`` in cluster mode.

Each master is one process with its own folder (AOF and ``nodes.conf``) under
``settings.home``; ``redis-cli --cluster create`` joins them and spreads the 16384
slots once. After a restart the masters find each other again from ``nodes.conf``, so
the cluster is created only while no slot is assigned yet.

Ports: the first of ``GRIDWATCH_REDIS_CLUSTER`` and the ones after it, else 17001 on;
each master also uses its port + 10000 for the cluster bus.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from .schemas.errors import StackError
from .settings import Settings
from .stack_proc import Paths, port_open, read_pid, require

DEFAULT_PORT = 17001
HOST = "127.0.0.1"
_HINT = "install it (apt-get install -y redis-server) or run scripts/setup.sh"


def ports(settings: Settings, count: int) -> list[int]:
    """The ports of ``count`` masters, from ``GRIDWATCH_REDIS_CLUSTER``'s first port."""
    if count < 0:
        raise StackError(f"a Redis Cluster cannot have {count} masters")
    if 0 < count < 3:
        # redis-cli refuses fewer than three masters: say so before starting anything.
        raise StackError(f"a Redis Cluster needs at least 3 masters, not {count}")
    first = settings.redis_cluster[0] if settings.redis_cluster else f"{HOST}:{DEFAULT_PORT}"
    base = int(first.rsplit(":", 1)[1])
    if base + count - 1 + 10000 > 65535:
        raise StackError(f"Redis Cluster port {base} leaves no room for the cluster bus "
                         "(port + 10000)")
    return [base + i for i in range(count)]


def seeds(node_ports: list[int]) -> str:
    """The value of ``GRIDWATCH_REDIS_CLUSTER`` naming every master."""
    return ",".join(f"{HOST}:{port}" for port in node_ports)


def pid_name(port: int) -> str:
    return f"redis-cluster-{port}"


def server_args(paths: Paths, port: int) -> list[str]:
    """``redis-server`` arguments of the master on ``port`` (AOF on, like the single one)."""
    folder = paths.redis_cluster / str(port)
    return [
        "--port", str(port), "--bind", HOST, "--protected-mode", "yes",
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "5000",
        "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "everysec",
        "--save", "", "--daemonize", "yes", "--pidfile", str(paths.pidfile(pid_name(port))),
        "--logfile", str(paths.logs / f"{pid_name(port)}.log"),
    ]


def create_args(node_ports: list[int]) -> list[str]:
    """``redis-cli`` arguments that join the masters and spread the slots, no replicas."""
    return ["--cluster", "create", *(f"{HOST}:{port}" for port in node_ports),
            "--cluster-replicas", "0", "--cluster-yes"]


def configured_ports(paths: Paths) -> list[int]:
    """The ports of the masters whose folders exist (the cluster made before)."""
    folder = paths.redis_cluster
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def running_ports(paths: Paths) -> list[int]:
    """The ports of the masters started by the stack that are alive."""
    found = []
    for pidfile in paths.pidfiles("redis-cluster"):
        port = pidfile.stem.rsplit("-", 1)[1]
        if port.isdigit() and read_pid(pidfile):
            found.append(int(port))
    return sorted(found)


def start(paths: Paths, node_ports: list[int]) -> list[int]:
    """Start the masters not already running; returns the ports started now.

    Raises:
        StackError: redis-server is missing, a port (or its bus port) is taken by
            another process, a cluster of other ports was made here, or a master did
            not start.
    """
    made = configured_ports(paths)
    if made and made != node_ports:
        raise StackError(f"this stack's Redis Cluster was made on ports {made}, not "
                         f"{node_ports}: wipe it with `gridwatch stack reset --yes`")
    todo = [port for port in node_ports if not read_pid(paths.pidfile(pid_name(port)))]
    if not todo:
        return []
    server = require("redis-server", _HINT)
    for port in todo:
        for taken in (port, port + 10000):
            if port_open(HOST, taken):
                raise StackError(f"port {taken} for Redis Cluster master {port} is taken by "
                                 "another process")
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    for port in todo:
        (paths.redis_cluster / str(port)).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([server, *server_args(paths, port)],
                              check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError(f"redis-server (cluster, port {port}) did not start: "
                             + (proc.stderr or proc.stdout)[-300:])
    return todo


def cluster_info(port: int) -> dict[str, str]:
    """``CLUSTER INFO`` of the master on ``port`` (empty when it does not answer)."""
    import redis

    try:
        client = redis.Redis(host=HOST, port=port, socket_timeout=1, decode_responses=True)
        try:
            raw = client.execute_command("CLUSTER INFO")
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - not answering yet
        return {}
    if isinstance(raw, dict):  # redis-py parses the reply with its callback
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def create_if_new(node_ports: list[int], log: Callable[[str], None]) -> bool:
    """Join the masters into a cluster unless their slots are assigned already.

    Returns:
        True when the cluster was created now.

    Raises:
        StackError: ``redis-cli --cluster create`` failed.
    """
    info = cluster_info(node_ports[0])
    if info.get("cluster_slots_assigned", "0") != "0":
        return False
    cli = require("redis-cli", _HINT)
    proc = subprocess.run([cli, *create_args(node_ports)], check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise StackError("redis-cli --cluster create failed: " + " | ".join(tail))
    log(f"redis cluster: created from {len(node_ports)} masters")
    return True


def ready(node_ports: list[int]) -> bool:
    """True when every master reports ``cluster_state:ok`` and knows all the others."""
    for port in node_ports:
        info = cluster_info(port)
        if info.get("cluster_state") != "ok":
            return False
        if int(info.get("cluster_known_nodes", "0")) < len(node_ports):
            return False
    return bool(node_ports)


def answering(node_ports: list[int]) -> bool:
    """True when every master answers at all (before the cluster is created)."""
    return all(bool(cluster_info(port)) for port in node_ports)


def logs_of(paths: Paths, port: int) -> Path:
    return paths.logs / f"{pid_name(port)}.log"
