"""The local stack: a one-node Apache Kafka (KRaft) and a Redis server, started by us.

Used where no Docker engine runs (``docker-compose.yml`` is the deployment path).
Kafka's jars come from Maven Central through Maven (``stack/pom.xml``); Redis is
Debian's ``redis-server`` with AOF on. Data, logs and pid files live under
``settings.home`` (``.local/`` in a checkout, git-ignored), so a restart keeps topics,
messages and state.

``up`` is idempotent, ``down`` stops only the processes whose pid files ``up`` wrote,
``reset`` wipes the data.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .schemas.errors import StackError
from .settings import Settings

POM = Path(__file__).resolve().parent.parent / "stack" / "pom.xml"
KAFKA_HEAP = os.environ.get("GRIDWATCH_KAFKA_HEAP", "-Xms256m -Xmx1g")


@dataclass(frozen=True)
class Paths:
    """Where the local stack keeps its files."""

    home: Path

    @property
    def jars(self) -> Path:
        return self.home / "kafka" / "lib"

    @property
    def kafka_data(self) -> Path:
        return self.home / "kafka" / "data"

    @property
    def kafka_config(self) -> Path:
        return self.home / "kafka" / "server.properties"

    @property
    def redis_data(self) -> Path:
        return self.home / "redis"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def _require(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise StackError(f"{tool} not found: {hint}")
    return found


def fetch_kafka(paths: Paths, log: Callable[[str], None] = print) -> None:
    """Resolve the Kafka broker's jars from Maven Central into ``paths.jars``.

    Raises:
        StackError: Maven or Java is missing, or Maven could not resolve the jars.
    """
    if paths.jars.is_dir() and any(paths.jars.glob("kafka_2.13-*.jar")):
        return
    mvn = _require("mvn", "install Maven (apt-get install -y maven) or run scripts/setup.sh")
    _require("java", "install Java 17 (apt-get install -y openjdk-17-jre-headless)")
    log("fetching the Kafka broker jars from Maven Central (once) ...")
    paths.jars.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={paths.jars}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0 or not any(paths.jars.glob("kafka_2.13-*.jar")):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise StackError("Maven could not fetch the Kafka jars: " + " | ".join(tail))


def _kafka_properties(settings: Settings, paths: Paths) -> str:
    host = settings.kafka.split(",")[0].rsplit(":", 1)[0]
    port = settings.kafka_port
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{host}:{port + 1}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{port + 1}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={paths.kafka_data}",
        f"num.partitions={settings.partitions}",
        "auto.create.topics.enable=false",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=8",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=336",
        "num.network.threads=2",
        "num.io.threads=4",
        "",
    ])


_LOG4J = """log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


def _java_cmd(paths: Paths, main: str, *args: str) -> list[str]:
    java = _require("java", "install Java 17 (apt-get install -y openjdk-17-jre-headless)")
    log4j = paths.home / "kafka" / "log4j.properties"
    return [java, *KAFKA_HEAP.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{paths.jars}/*", main, *args]


def cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, as Kafka makes them, never
    starting with "-" (the storage tool would read it as an option; Kafka's own
    generator skips those too)."""
    while True:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster.startswith("-"):
            return cluster


def _start_kafka(settings: Settings, paths: Paths, log: Callable[[str], None]) -> None:
    fetch_kafka(paths, log)
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    paths.kafka_config.write_text(_kafka_properties(settings, paths))
    (paths.home / "kafka" / "log4j.properties").write_text(
        _LOG4J.format(log=paths.logs / "kafka.log"))
    if not (paths.kafka_data / "meta.properties").exists():
        cluster = cluster_id()
        proc = subprocess.run(
            _java_cmd(paths, "kafka.tools.StorageTool", "format", "-t", cluster,
                      "-c", str(paths.kafka_config)),
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise StackError("formatting Kafka storage failed: " + proc.stderr.strip()[-300:])
    out = open(paths.logs / "kafka.out", "ab")
    proc = subprocess.Popen(
        _java_cmd(paths, "kafka.Kafka", str(paths.kafka_config)),
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    paths.pidfile("kafka").write_text(str(proc.pid))


def _start_redis(settings: Settings, paths: Paths) -> None:
    server = _require("redis-server", "install it (apt-get install -y redis-server) "
                      "or run scripts/setup.sh")
    paths.redis_data.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [server, "--port", str(settings.redis_port), "--bind", "127.0.0.1",
         "--dir", str(paths.redis_data), "--appendonly", "yes", "--appendfsync", "everysec",
         "--save", "", "--daemonize", "yes", "--pidfile", str(paths.pidfile("redis")),
         "--logfile", str(paths.logs / "redis.log"), "--protected-mode", "yes"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise StackError("redis-server did not start: " + (proc.stderr or proc.stdout)[-300:])


def _kafka_ready(settings: Settings) -> bool:
    from kafka import KafkaAdminClient  # local import: only the stack needs it here
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka, request_timeout_ms=3000,
                                 client_id="gridwatch-stack")
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    try:
        admin.list_topics()
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()


def _redis_ready(settings: Settings) -> bool:
    import redis
    try:
        return bool(redis.Redis.from_url(settings.redis, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001
        return False


def status(settings: Settings) -> dict[str, object]:
    """Where the stack listens and whether each part answers."""
    paths = Paths(settings.home)
    host = settings.kafka.split(",")[0].rsplit(":", 1)[0]
    return {
        "kafka": settings.kafka,
        "redis": settings.redis,
        "kafka_up": port_open(host, settings.kafka_port) and _kafka_ready(settings),
        "redis_up": _redis_ready(settings),
        "kafka_pid": _read_pid(paths.pidfile("kafka")),
        "redis_pid": _read_pid(paths.pidfile("redis")),
        "home": str(settings.home),
    }


def up(settings: Settings, *, log: Callable[[str], None] = print, timeout: float = 120) -> None:
    """Start Kafka and Redis if they are not running, wait for both, create the topics.

    Raises:
        StackError: a tool is missing, a port is taken by something else, or a part
            did not answer within ``timeout`` seconds.
    """
    from .streams.admin import ensure_topics

    paths = Paths(settings.home)
    host = settings.kafka.split(",")[0].rsplit(":", 1)[0]
    for name, port, starter in (
        ("redis", settings.redis_port, lambda: _start_redis(settings, paths)),
        ("kafka", settings.kafka_port, lambda: _start_kafka(settings, paths, log)),
    ):
        mine = _read_pid(paths.pidfile(name))
        if mine:
            continue
        if port_open("127.0.0.1" if name == "redis" else host, port):
            ready = _redis_ready(settings) if name == "redis" else _kafka_ready(settings)
            if ready:
                log(f"{name}: already answering on port {port} (not started by us; left alone)")
                continue
            raise StackError(f"port {port} for {name} is taken by another process")
        if name == "kafka" and port_open(host, port + 1):
            raise StackError(f"port {port + 1} (Kafka controller) is taken by another process")
        starter()
        log(f"{name}: starting on port {port}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _redis_ready(settings) and _kafka_ready(settings):
            break
        for name in ("kafka", "redis"):
            pidfile = paths.pidfile(name)
            if pidfile.exists() and _read_pid(pidfile) is None:
                raise StackError(f"{name} exited at start; see {paths.logs / (name + '.log')}")
        time.sleep(0.5)
    else:
        raise StackError(f"the stack did not answer within {timeout:.0f} s; see {paths.logs}")
    created = ensure_topics(settings)
    if created:
        log(f"topics created: {', '.join(created)}")
    log(f"kafka: {settings.kafka}")
    log(f"redis: {settings.redis}")


def _stop(pid: int, timeout: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def down(settings: Settings, *, log: Callable[[str], None] = print) -> None:
    """Stop the Kafka and Redis processes that ``up`` started (and nothing else)."""
    paths = Paths(settings.home)
    for name in ("kafka", "redis"):
        pid = _read_pid(paths.pidfile(name))
        if pid:
            _stop(pid)
            log(f"{name}: stopped (pid {pid})")
        else:
            log(f"{name}: not running")
        paths.pidfile(name).unlink(missing_ok=True)


def reset(settings: Settings, *, log: Callable[[str], None] = print) -> None:
    """Stop the stack and wipe its data (topics, messages, Redis state); keeps the jars."""
    down(settings, log=log)
    for folder in (Paths(settings.home).kafka_data, Paths(settings.home).redis_data):
        if folder.exists():
            shutil.rmtree(folder)
            log(f"wiped {folder}")
