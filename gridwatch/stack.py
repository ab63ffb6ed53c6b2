"""The local stack: Apache Kafka (KRaft, one node or several) and Redis (one server, and
optionally a Redis Cluster), started by us.

Used where no Docker engine runs (``docker-compose.yml`` is the deployment path).
Kafka's jars come from Maven Central through Maven (``stack/pom.xml``); Redis is
Debian's ``redis-server`` with AOF on. Data, logs and pid files live under
``settings.home`` (``.local/`` in a checkout, git-ignored), so a restart keeps topics,
messages and state.

``up`` is idempotent (what runs is reused, what is missing is started), ``down`` stops
only the processes whose pid files ``up`` wrote, ``reset`` wipes the data.
``up(brokers=3)`` runs three Kafka nodes (topics replicated 3 times, 2 in sync for a
write), ``up(redis_cluster=3)`` three Redis Cluster masters; see ``stack_kafka`` and
``stack_redis`` for their ports.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable

from . import stack_kafka, stack_redis
from .schemas.errors import StackError
from .settings import Settings
from .stack_kafka import cluster_id, fetch_kafka
from .stack_proc import Paths, port_open, read_pid, require, stop

__all__ = ["Paths", "cluster_id", "down", "fetch_kafka", "port_open", "reset", "status",
           "stop_broker", "up"]

_read_pid = read_pid  # the names callers used before the split


def _stop(pid: int, timeout: float = 30) -> None:
    stop([pid], timeout)


def _start_redis(settings: Settings, paths: Paths) -> None:
    server = require("redis-server", "install it (apt-get install -y redis-server) "
                     "or run scripts/setup.sh")
    paths.redis_data.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [server, "--port", str(settings.redis_port), "--bind", "127.0.0.1",
         "--dir", str(paths.redis_data), "--appendonly", "yes", "--appendfsync", "everysec",
         "--save", "", "--daemonize", "yes", "--pidfile", str(paths.pidfile("redis")),
         "--logfile", str(paths.logs / "redis.log"), "--protected-mode", "yes"],
        check=False, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise StackError("redis-server did not start: " + (proc.stderr or proc.stdout)[-300:])


def _redis_ready(settings: Settings) -> bool:
    import redis
    try:
        return bool(redis.Redis.from_url(settings.redis, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001
        return False


def _kafka_ready(settings: Settings) -> bool:
    return stack_kafka.ready(settings, 1)


def _brokers_wanted(settings: Settings, paths: Paths, brokers: int | None) -> int:
    # Unsaid: keep the shape that runs (a cluster stays a cluster across `up`), else the
    # one the exported GRIDWATCH_KAFKA names (what `up --brokers N` told to export).
    if brokers is not None:
        return brokers
    if stack_kafka.running_nodes(paths):
        return stack_kafka.configured_nodes(paths)
    return len([s for s in settings.kafka.split(",") if s.strip()])


def _masters_wanted(settings: Settings, paths: Paths, masters: int | None) -> int:
    if masters is not None:
        return masters
    if stack_redis.running_ports(paths):
        return len(stack_redis.configured_ports(paths))
    # Seeds on this machine, as `up --redis-cluster N` told to export; seeds elsewhere
    # name a cluster the stack does not run.
    local = [n for n in settings.redis_cluster
             if n.rsplit(":", 1)[0] in (stack_redis.HOST, "localhost")]
    return len(local) if len(local) >= 3 else 0


def status(settings: Settings) -> dict[str, object]:
    """Where the stack listens and whether each part answers."""
    paths = Paths(settings.home)
    nodes = stack_kafka.plan(settings, paths, _brokers_wanted(settings, paths, None))
    bootstrap = stack_kafka.bootstrap(nodes) if len(nodes) > 1 else settings.kafka
    first = nodes[0]
    out: dict[str, object] = {
        "kafka": bootstrap,
        "redis": settings.redis,
        "kafka_up": port_open(first.host, first.port)
        and stack_kafka.ready(settings.with_(kafka=bootstrap), len(nodes)),
        "redis_up": _redis_ready(settings),
        "kafka_pid": read_pid(paths.pidfile(first.name)),
        "redis_pid": read_pid(paths.pidfile("redis")),
        "home": str(settings.home),
    }
    if len(nodes) > 1:
        out["kafka_nodes"] = {n.address: read_pid(paths.pidfile(n.name)) for n in nodes}
    masters = stack_redis.configured_ports(paths) if stack_redis.running_ports(paths) else []
    if masters:
        out["redis_cluster"] = stack_redis.seeds(masters)
        out["redis_cluster_up"] = stack_redis.ready(masters)
        out["redis_cluster_pids"] = {
            f"{stack_redis.HOST}:{p}": read_pid(paths.pidfile(stack_redis.pid_name(p)))
            for p in masters}
    return out


def up(settings: Settings, *, log: Callable[[str], None] = print, timeout: float = 120,
       brokers: int | None = None, redis_cluster: int | None = None) -> Settings:
    """Start Kafka and Redis if they are not running, wait for them, create the topics.

    Args:
        brokers: Kafka nodes (None: as many as run now, else as many as
            ``settings.kafka`` lists).
        redis_cluster: Redis Cluster masters besides the single Redis (None: as many
            as run now, else the local seeds of ``settings.redis_cluster`` if three or
            more, else none; 0: none).

    Returns:
        The settings that reach what runs: every broker in ``kafka``, the cluster's
        masters in ``redis_cluster``.

    Raises:
        StackError: a tool is missing, a port is taken by something else, or a part
            did not answer within ``timeout`` seconds.
    """
    from .streams.admin import ensure_topics

    paths = Paths(settings.home)
    nodes = stack_kafka.plan(settings, paths, _brokers_wanted(settings, paths, brokers))
    masters = stack_redis.ports(settings, _masters_wanted(settings, paths, redis_cluster))
    stack_kafka.check_shape(paths, nodes)  # before a node of ours looks like a stranger
    started: list[str] = []

    if not read_pid(paths.pidfile("redis")):
        if port_open("127.0.0.1", settings.redis_port):
            if not _redis_ready(settings):
                raise StackError(f"port {settings.redis_port} for redis is taken by another "
                                 "process")
            log(f"redis: already answering on port {settings.redis_port} "
                "(not started by us; left alone)")
        else:
            _start_redis(settings, paths)
            started.append("redis")
            log(f"redis: starting on port {settings.redis_port}")

    first = nodes[0]
    foreign = (len(nodes) == 1 and not read_pid(paths.pidfile(first.name))
               and port_open(first.host, first.port))
    if foreign:
        if not _kafka_ready(settings):
            raise StackError(f"port {first.port} for kafka is taken by another process")
        log(f"kafka: already answering on port {first.port} (not started by us; left alone)")
    else:
        for node in stack_kafka.start(settings, paths, nodes, log):
            started.append(node.name)
            log(f"{node.name}: starting on port {node.port}")

    for port in stack_redis.start(paths, masters):
        started.append(stack_redis.pid_name(port))
        log(f"redis cluster: starting a master on port {port}")

    effective = settings.with_(
        kafka=stack_kafka.bootstrap(nodes) if len(nodes) > 1 else settings.kafka,
        redis_cluster=tuple(stack_redis.seeds(masters).split(",")) if masters
        else settings.redis_cluster,
    )
    _wait(effective, paths, len(nodes), masters, started, log, timeout)
    created = ensure_topics(effective, brokers=len(nodes))
    if created:
        log(f"topics created: {', '.join(created)}")
    log(f"kafka: {effective.kafka}")
    log(f"redis: {effective.redis}")
    if masters:
        log(f"redis cluster: {','.join(effective.redis_cluster)}")
    if len(nodes) > 1 or masters:
        log("to reach them, export:")
        log(f"  GRIDWATCH_KAFKA={effective.kafka}")
        if masters:
            log(f"  GRIDWATCH_REDIS_CLUSTER={','.join(effective.redis_cluster)}")
    return effective


def _wait(settings: Settings, paths: Paths, brokers: int, masters: list[int],
          started: list[str], log: Callable[[str], None], timeout: float) -> None:
    """Poll until every part answers (creating the Redis Cluster once its masters do);
    fail early when a process that was just started has exited."""
    deadline = time.monotonic() + timeout
    created = not masters
    while time.monotonic() < deadline:
        if not created and stack_redis.answering(masters):
            stack_redis.create_if_new(masters, log)
            created = True
        if (created and _redis_ready(settings)
                and stack_kafka.ready(settings, brokers)
                and (not masters or stack_redis.ready(masters))):
            return
        for name in started:
            pidfile = paths.pidfile(name)  # a daemonised redis writes its own, a bit later
            if pidfile.exists() and read_pid(pidfile) is None:
                raise StackError(exited_at_start(paths, name))
        time.sleep(0.5)
    raise StackError(f"the stack did not answer within {timeout:.0f} s; see {paths.logs}")


def exited_at_start(paths: Paths, name: str, lines: int = 6) -> str:
    """Why a part that was just started is gone: the last lines of its log (and of its
    console output) that say something, so the error can be acted on without a search."""
    said: list[str] = []
    for log_file in (paths.logs / f"{name}.log", paths.logs / f"{name}.out"):
        try:
            text = log_file.read_text(errors="replace")
        except OSError:
            continue
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        errors = [line for line in tail if any(
            word in line for word in ("ERROR", "FATAL", "Exception", "in use", "denied"))]
        said.extend(errors or tail[-2:])
    why = ("; last words: " + " | ".join(said)[-1200:]) if said else ""
    return f"{name} exited at start; see {paths.logs / (name + '.log')}{why}"


def stop_broker(settings: Settings, node: int, *, log: Callable[[str], None] = print) -> None:
    """Stop one node of a several-broker Kafka (``up`` starts it again): a failure drill."""
    paths = Paths(settings.home)
    pid = read_pid(paths.pidfile(f"kafka-{node}"))
    if pid is None:
        raise StackError(f"Kafka node {node} of this stack is not running")
    stop([pid])
    paths.pidfile(f"kafka-{node}").unlink(missing_ok=True)
    log(f"kafka-{node}: stopped (pid {pid})")


def down(settings: Settings, *, log: Callable[[str], None] = print) -> None:
    """Stop the Kafka and Redis processes that ``up`` started (and nothing else)."""
    paths = Paths(settings.home)
    groups = [
        ["kafka", *(p.stem for p in paths.pidfiles("kafka"))],
        ["redis", *(p.stem for p in paths.pidfiles("redis-cluster"))],
    ]
    for names in groups:
        pids = {name: read_pid(paths.pidfile(name)) for name in names}
        stop([pid for pid in pids.values() if pid])  # a cluster's nodes together
        for name, pid in pids.items():
            log(f"{name}: stopped (pid {pid})" if pid else f"{name}: not running")
            paths.pidfile(name).unlink(missing_ok=True)


def reset(settings: Settings, *, log: Callable[[str], None] = print) -> None:
    """Stop the stack and wipe its data (topics, messages, Redis state); keeps the jars."""
    down(settings, log=log)
    paths = Paths(settings.home)
    for folder in (paths.kafka_data, paths.redis_data, paths.kafka_cluster,
                   paths.redis_cluster):
        if folder.exists():
            shutil.rmtree(folder)
            log(f"wiped {folder}")
