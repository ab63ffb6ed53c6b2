"""The local Kafka: one KRaft node, or N nodes that are each broker and controller.

Kafka's jars come from Maven Central through Maven (``stack/pom.xml``). Node ``i``
(from 1) listens on ``port + 2(i-1)`` for clients and the next port for the controller
quorum, where ``port`` is the one of ``GRIDWATCH_KAFKA``; so one node is exactly the
single broker the stack always ran. Several nodes share one cluster id, list all N as
``controller.quorum.voters``, keep internal topics on min(3, N) replicas and refuse
writes acknowledged by fewer than min.insync.replicas (2 from three nodes on).

The config text is built by pure functions (:func:`plan`, :func:`properties`); the
rest formats storage once per node and starts the JVMs.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .schemas.errors import StackError
from .settings import Settings
from .stack_proc import Paths, port_open, read_pid, require
from .streams.topics import replication_for

POM = Path(__file__).resolve().parent.parent / "stack" / "pom.xml"
_JAVA_HINT = "install Java 17 (apt-get install -y openjdk-17-jre-headless)"


@dataclass(frozen=True)
class KafkaNode:
    """One node of the local Kafka: its id, ports and files."""

    id: int
    host: str
    port: int
    controller_port: int
    folder: Path
    data: Path
    config: Path
    name: str  # pid file and log name: "kafka" alone, "kafka-<id>" in a cluster

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def plan(settings: Settings, paths: Paths, count: int) -> list[KafkaNode]:
    """The ``count`` nodes of the local Kafka, ports derived from ``GRIDWATCH_KAFKA``."""
    if count < 1:
        raise StackError(f"a Kafka needs at least one node, not {count}")
    host = settings.kafka.split(",")[0].rsplit(":", 1)[0]
    base = settings.kafka_port
    if count == 1:
        folder = paths.home / "kafka"
        return [KafkaNode(1, host, base, base + 1, folder, paths.kafka_data,
                          paths.kafka_config, "kafka")]
    nodes = []
    for i in range(1, count + 1):
        folder = paths.kafka_cluster / f"node-{i}"
        port = base + 2 * (i - 1)
        nodes.append(KafkaNode(i, host, port, port + 1, folder, folder / "data",
                               folder / "server.properties", f"kafka-{i}"))
    return nodes


def bootstrap(nodes: list[KafkaNode]) -> str:
    """The value of ``GRIDWATCH_KAFKA`` that names every node."""
    return ",".join(node.address for node in nodes)


def properties(settings: Settings, node: KafkaNode, nodes: list[KafkaNode]) -> str:
    """The ``server.properties`` of ``node`` in a Kafka of ``nodes``."""
    rf, min_isr = replication_for(len(nodes))
    voters = ",".join(f"{n.id}@{n.host}:{n.controller_port}" for n in nodes)
    lines = [
        "process.roles=broker,controller",
        f"node.id={node.id}",
        f"controller.quorum.voters={voters}",
        (f"listeners=PLAINTEXT://{node.host}:{node.port},"
         f"CONTROLLER://{node.host}:{node.controller_port}"),
        f"advertised.listeners=PLAINTEXT://{node.host}:{node.port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={node.data}",
        f"num.partitions={settings.partitions}",
        "auto.create.topics.enable=false",
        f"offsets.topic.replication.factor={rf}",
        "offsets.topic.num.partitions=8",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={min_isr}",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=336",
        "num.network.threads=2",
        "num.io.threads=4",
    ]
    if len(nodes) > 1:
        lines += [
            f"default.replication.factor={rf}",
            f"min.insync.replicas={min_isr}",
            # Fewer threads per JVM: several nodes share the same few cores.
            "num.replica.fetchers=1",
            "background.threads=4",
        ]
    return "\n".join(lines) + "\n"


def heap(count: int, configured: str) -> str:
    """JVM heap flags of each of ``count`` nodes: ``configured`` (``GRIDWATCH_KAFKA_HEAP``,
    ``settings.kafka_heap``) if set; smaller per node in a cluster."""
    return configured or ("-Xms256m -Xmx1g" if count == 1 else "-Xms128m -Xmx384m")


_LOG4J = """log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


def java_cmd(paths: Paths, log4j: Path, heap_flags: str, main: str, *args: str) -> list[str]:
    java = require("java", _JAVA_HINT)
    return [java, *heap_flags.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{paths.jars}/*", main, *args]


def cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, as Kafka makes them, never
    starting with "-" (the storage tool would read it as an option; Kafka's own
    generator skips those too)."""
    while True:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster.startswith("-"):
            return cluster


def fetch_kafka(paths: Paths, log: Callable[[str], None] = print) -> None:
    """Resolve the Kafka broker's jars from Maven Central into ``paths.jars``.

    Raises:
        StackError: Maven or Java is missing, or Maven could not resolve the jars.
    """
    if paths.jars.is_dir() and any(paths.jars.glob("kafka_2.13-*.jar")):
        return
    mvn = require("mvn", "install Maven (apt-get install -y maven) or run scripts/setup.sh")
    require("java", _JAVA_HINT)
    log("fetching the Kafka broker jars from Maven Central (once) ...")
    paths.jars.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={paths.jars}"],
        check=False, capture_output=True, text=True,
    )
    if proc.returncode != 0 or not any(paths.jars.glob("kafka_2.13-*.jar")):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise StackError("Maven could not fetch the Kafka jars: " + " | ".join(tail))


def configured_nodes(paths: Paths) -> int:
    """How many nodes the several-broker Kafka under ``paths`` was made with (0: none)."""
    folder = paths.kafka_cluster
    return len(list(folder.glob("node-*"))) if folder.is_dir() else 0


def running_nodes(paths: Paths) -> int:
    """How many nodes of a several-broker Kafka started by the stack are alive."""
    return sum(1 for pidfile in paths.pidfiles("kafka") if read_pid(pidfile))


def start(settings: Settings, paths: Paths, nodes: list[KafkaNode],
          log: Callable[[str], None]) -> list[KafkaNode]:
    """Start the nodes not already running (formatting new storage once, with one
    cluster id for all); returns those started now.

    Raises:
        StackError: a port is taken by a process that is not this node, another shape
            of Kafka of this stack runs or has data, or storage formatting failed.
    """
    check_shape(paths, nodes)
    todo = [node for node in nodes if not read_pid(paths.pidfile(node.name))]
    if not todo:
        return []
    for node in todo:
        for port in (node.port, node.controller_port):
            if port_open(node.host, port):
                raise StackError(f"port {port} for Kafka node {node.id} is taken by another "
                                 "process")
    fetch_kafka(paths, log)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    cluster = _shared_cluster_id(nodes)
    flags = heap(len(nodes), settings.kafka_heap)
    for node in todo:
        node.data.mkdir(parents=True, exist_ok=True)
        node.config.write_text(properties(settings, node, nodes))
        log4j = node.folder / "log4j.properties"
        log4j.write_text(_LOG4J.format(log=paths.logs / f"{node.name}.log"))
        if not (node.data / "meta.properties").exists():
            proc = subprocess.run(
                java_cmd(paths, log4j, "-Xmx256m", "kafka.tools.StorageTool", "format",
                         "-t", cluster, "-c", str(node.config)),
                check=False, capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise StackError(f"formatting Kafka storage of node {node.id} failed: "
                                 + proc.stderr.strip()[-300:])
        with open(paths.logs / f"{node.name}.out", "ab") as out:
            proc_ = subprocess.Popen(
                java_cmd(paths, log4j, flags, "kafka.Kafka", str(node.config)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        paths.pidfile(node.name).write_text(str(proc_.pid))
    return todo


def check_shape(paths: Paths, nodes: list[KafkaNode]) -> None:
    """Refuse to start ``nodes`` next to another shape of this stack's Kafka.

    Raises:
        StackError: the one-node Kafka runs and several are asked for, or the other
            way round, or the cluster's data was made with another node count.
    """
    single_alive = read_pid(paths.pidfile("kafka")) is not None
    if len(nodes) == 1:
        if running_nodes(paths):
            raise StackError("a several-broker Kafka of this stack is running: "
                             "`gridwatch stack down` first")
        return
    if single_alive:
        raise StackError("the one-node Kafka of this stack is running: "
                         "`gridwatch stack down` first")
    made = configured_nodes(paths)
    if made and made != len(nodes):
        raise StackError(f"this stack's Kafka was made with {made} nodes, not {len(nodes)}: "
                         f"use --brokers {made}, or wipe it with `gridwatch stack reset --yes`")


def _shared_cluster_id(nodes: list[KafkaNode]) -> str:
    """The id already formatted into a node's storage, or a new one: every node of a
    cluster must carry the same."""
    for node in nodes:
        meta = node.data / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
    return cluster_id()


def ready(settings: Settings, brokers: int) -> bool:
    """True when the cluster of ``settings.kafka`` answers and ``brokers`` brokers are
    registered in it."""
    from .streams import clients  # local import: only the stack needs Kafka clients here

    try:
        admin = clients.probe(settings)
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    try:
        admin.list_topics()
        if brokers > 1:
            return len(admin.describe_cluster().get("brokers", [])) >= brokers
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()
