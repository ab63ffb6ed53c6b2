"""docker-compose.yml and the Dockerfile, checked by structure (no Docker engine runs here)."""

from __future__ import annotations

import argparse
import inspect
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from gridwatch import settings as settings_mod
from gridwatch.cli import build_parser

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever form compose allows."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def resolved(value: str) -> str:
    """A value with every ``${VAR:-default}`` replaced by its default: what compose runs
    when the variable is not set (the default profile)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def command_of(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def depends(service: dict[str, Any]) -> dict[str, str]:
    """Dependencies with their condition (a plain list means service_started)."""
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return {name: "service_started" for name in dep}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in dep.items()}


def test_the_five_services_are_declared(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "redis", "topics", "worker", "gateway"} <= set(services)


def test_kafka_is_the_official_image_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    image = kafka["image"]
    assert image.split(":")[0] in {"apache/kafka", "apache/kafka-native"}
    assert ":" in image and image.split(":")[1] not in {"", "latest"}  # pinned
    env = env_of(kafka)
    roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    node = env["KAFKA_NODE_ID"]
    assert re.fullmatch(r"\d+@[\w.-]+:\d+(,\d+@[\w.-]+:\d+)*", voters)
    assert any(v.split("@")[0] == node for v in voters.split(","))
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    # The controller listener named in the voters is one the node listens on.
    controller_port = voters.split(",")[0].rsplit(":", 1)[1]
    assert f"CONTROLLER://:{controller_port}" in env["KAFKA_LISTENERS"]
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "healthcheck" in kafka


def test_redis_keeps_an_append_only_file(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert redis["image"].split(":")[0] == "redis"
    cmd = command_of(redis)
    assert cmd[0] == "redis-server"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert any(str(v).endswith(":/data") for v in redis.get("volumes", []))
    assert "healthcheck" in redis


def test_topics_is_a_one_shot_service_after_kafka_is_healthy(
        services: dict[str, dict[str, Any]]) -> None:
    topics = services["topics"]
    assert topics.get("restart") == "no"
    assert command_of(topics) == ["gridwatch", "stack", "topics"]
    assert depends(topics).get("kafka") == "service_healthy"


def test_workers_scale(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert command_of(worker)[:2] == ["gridwatch", "worker"]
    assert "container_name" not in worker  # a fixed name would forbid --scale
    assert not worker.get("ports")  # host ports would collide between replicas
    deps = depends(worker)
    assert deps.get("topics") == "service_completed_successfully"
    assert deps.get("redis") == "service_healthy"


def test_the_gateway_serves_port_8765(services: dict[str, dict[str, Any]]) -> None:
    gateway = services["gateway"]
    assert command_of(gateway)[:2] == ["gridwatch", "gateway"]
    ports = [str(p) for p in gateway.get("ports", [])]
    assert any(p.split(":")[-1].split("/")[0] == "8765" for p in ports)
    assert env_of(gateway)["GRIDWATCH_GATEWAY"].endswith(":8765")
    assert depends(gateway).get("topics") == "service_completed_successfully"


def test_the_gridwatch_services_reach_kafka_and_redis_by_service_name(
        services: dict[str, dict[str, Any]]) -> None:
    for name in ("topics", "worker", "gateway"):
        env = {k: resolved(v) for k, v in env_of(services[name]).items()}
        assert env["GRIDWATCH_KAFKA"].split(":")[0] == "kafka", name
        assert env["GRIDWATCH_REDIS"].startswith("redis://redis:"), name
        # The values parse with the real settings loader.
        loaded = settings_mod.load({k: v for k, v in env.items() if "${" not in v})
        assert loaded.kafka == env["GRIDWATCH_KAFKA"]
        assert loaded.redis_cluster == () and loaded.replication == 0  # one Redis, derived RF


def _variables_read_by_settings() -> set[str]:
    documented = set(re.findall(r"^(GRIDWATCH_[A-Z_]+)\s", settings_mod.__doc__ or "", re.MULTILINE))
    read = set(re.findall(r'"(GRIDWATCH_[A-Z_]+)"', inspect.getsource(settings_mod.load)))
    assert read, "no GRIDWATCH_* variable found in settings.load"
    return documented | read


def test_every_gridwatch_variable_in_compose_is_one_settings_reads(
        compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    known = _variables_read_by_settings()
    used: set[str] = set()
    for service in services.values():
        used |= {k for k in env_of(service) if k.startswith("GRIDWATCH_")}
    # Also any interpolation of the form ${GRIDWATCH_X:-...} anywhere in the file.
    used |= set(re.findall(r"\$\{(GRIDWATCH_[A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert used, "compose sets no GRIDWATCH_* variable"
    assert used <= known, f"not read by gridwatch.settings: {sorted(used - known)}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_in_compose_exists_in_the_cli(
        services: dict[str, dict[str, Any]]) -> None:
    parser = build_parser()
    subs = _subcommands(parser)
    assert {"stack", "worker", "gateway"} <= set(subs)
    checked = 0
    for name, service in services.items():
        cmd = command_of(service)
        if not cmd or cmd[0] != "gridwatch":
            continue
        assert cmd[1] in subs, (name, cmd)
        # The whole command line parses (choices such as `stack topics` included).
        args = parser.parse_args(cmd[1:])
        assert callable(args.func)
        checked += 1
    assert checked >= 3


def test_the_gridwatch_services_share_one_image_built_from_the_dockerfile(
        services: dict[str, dict[str, Any]]) -> None:
    images = {services[n].get("image") for n in ("topics", "worker", "gateway")}
    assert len(images) == 1
    builders = [n for n in ("topics", "worker", "gateway") if "build" in services[n]]
    assert builders
    for n in builders:
        build = services[n]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context / "Dockerfile").is_file()


def test_named_volumes_are_declared(compose: dict[str, Any],
                                    services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    for service in services.values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, source


# ---- Dockerfile -----------------------------------------------------------------------------


def _copies() -> list[tuple[list[str], bool]]:
    """(sources, from another stage) of every COPY/ADD in the Dockerfile."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0].upper() not in {"COPY", "ADD"}:
            continue
        flags = [w for w in words[1:] if w.startswith("--")]
        paths = [w for w in words[1:] if not w.startswith("--")]
        out.append((paths[:-1], any(f.startswith("--from") for f in flags)))
    return out


def _missing_copies() -> list[str]:
    missing = []
    for sources, from_stage in _copies():
        if from_stage:
            continue
        missing += [src for src in sources if not list(ROOT.glob(src))]
    return missing


def test_the_dockerfile_copies_only_paths_that_exist() -> None:
    assert _copies()
    missing = _missing_copies()
    assert not missing, f"Dockerfile copies paths absent from the repository: {missing}"


def test_the_dockerfile_copies_every_package_folder_of_pyproject() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    folders = set(re.findall(r'"gridwatch(?:\.\w+)?"\s*=\s*"(\w+)"', text))
    assert {"gridwatch", "schemas", "streams", "agents"} <= folders
    copied = {src.rstrip("/") for sources, from_stage in _copies() if not from_stage
              for src in sources}
    assert folders <= copied, sorted(folders - copied)


def test_the_image_gives_its_run_user_a_writable_gridwatch_home() -> None:
    """The workers write faust's data directory under GRIDWATCH_HOME, as the USER."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    user = re.findall(r"^USER\s+(\S+)", final, re.MULTILINE)[-1]
    home = re.search(r"^ENV\s+GRIDWATCH_HOME=(\S+)", final, re.MULTILINE)
    assert home, "the final stage sets no GRIDWATCH_HOME"
    assert re.search(rf"chown\s+{re.escape(user)}\S*\s+{re.escape(home.group(1))}\b", final), (
        f"{home.group(1)} is not given to {user}")


# ---- the kafka-cluster and redis-cluster profiles --------------------------------------------

DEFAULT_SERVICES = ("kafka", "redis", "topics", "worker", "gateway")


def _in_profile(services: dict[str, dict[str, Any]], profile: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if profile in (s.get("profiles") or [])}


def _header_value(name: str) -> str:
    """The value the file's header tells a district to put in .env for ``name``."""
    found = re.search(rf"^#.*\b{name}=(\S+)", (ROOT / "docker-compose.yml").read_text(),
                      re.MULTILINE)
    assert found, f"the compose header does not say how to set {name}"
    return found.group(1)


def test_the_default_profile_is_unchanged_by_the_cluster_profiles(
        services: dict[str, dict[str, Any]]) -> None:
    for name in DEFAULT_SERVICES:
        assert not services[name].get("profiles"), name
    for name in DEFAULT_SERVICES:
        deps = services[name].get("depends_on") or {}
        for dep, spec in (deps.items() if isinstance(deps, dict) else []):
            if services[dep].get("profiles"):
                # A profile's service is waited for only when its profile is on.
                assert spec.get("required") is False, (name, dep)


def test_the_kafka_cluster_profile_runs_three_voting_nodes_with_replicated_topics(
        services: dict[str, dict[str, Any]]) -> None:
    nodes = _in_profile(services, "kafka-cluster")
    assert set(nodes) == {"kafka-1", "kafka-2", "kafka-3"}
    envs = {name: env_of(svc) for name, svc in nodes.items()}
    assert {e["KAFKA_NODE_ID"] for e in envs.values()} == {"1", "2", "3"}
    assert len({e["CLUSTER_ID"] for e in envs.values()}) == 1  # formatted as one cluster
    for name, env in envs.items():
        svc = nodes[name]
        assert svc["image"] == services["kafka"]["image"]  # the same pinned broker
        voters = dict(v.split("@") for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        assert voters == {"1": "kafka-1:9093", "2": "kafka-2:9093", "3": "kafka-3:9093"}
        assert voters[env["KAFKA_NODE_ID"]].split(":")[0] == name
        assert {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")} == {"broker",
                                                                             "controller"}
        assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"]
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert "healthcheck" in svc
    volumes = [str(v).split(":")[0] for svc in nodes.values() for v in svc["volumes"]]
    assert len(set(volumes)) == 3  # a log directory each
    # Topic creation waits for all three, and the header's settings reach them.
    topics_deps = depends(services["topics"])
    assert all(topics_deps.get(n) == "service_healthy" for n in nodes)
    kafka = _header_value("GRIDWATCH_KAFKA")
    assert sorted(kafka.split(",")) == [f"{n}:9092" for n in sorted(nodes)]
    loaded = settings_mod.load({"GRIDWATCH_KAFKA": kafka,
                                "GRIDWATCH_REPLICATION": _header_value("GRIDWATCH_REPLICATION")})
    assert loaded.replication == 3


def test_the_redis_cluster_profile_runs_three_masters_joined_once(
        services: dict[str, dict[str, Any]]) -> None:
    profile = _in_profile(services, "redis-cluster")
    masters = {n: s for n, s in profile.items() if n.startswith("redis-node-")}
    assert set(masters) == {"redis-node-1", "redis-node-2", "redis-node-3"}
    for name, svc in masters.items():
        cmd = command_of(svc)
        assert cmd[0] == "redis-server"
        assert cmd[cmd.index("--cluster-enabled") + 1] == "yes"
        assert cmd[cmd.index("--appendonly") + 1] == "yes"
        assert cmd[cmd.index("--cluster-announce-hostname") + 1] == name
        assert cmd[cmd.index("--cluster-preferred-endpoint-type") + 1] == "hostname"
        assert "healthcheck" in svc
    volumes = [str(v).split(":")[0] for svc in masters.values() for v in svc["volumes"]]
    assert len(set(volumes)) == 3 and all(str(v).endswith(":/data")
                                          for svc in masters.values() for v in svc["volumes"])
    create = profile["redis-cluster-create"]
    assert create.get("restart") == "no"
    assert depends(create) == {n: "service_healthy" for n in masters}
    script = " ".join(command_of(create))
    assert "--cluster create" in script and "--cluster-replicas 0" in script
    assert "--cluster-yes" in script
    assert all(f"getent hosts {n}" in script for n in masters)
    assert "cluster_state:ok" in script  # a restart does not try to create it again
    for name in ("worker", "gateway"):
        assert depends(services[name]).get("redis-cluster-create") == (
            "service_completed_successfully")
    seeds = settings_mod.load(
        {"GRIDWATCH_REDIS_CLUSTER": _header_value("GRIDWATCH_REDIS_CLUSTER")}).redis_cluster
    assert sorted(seeds) == [f"{n}:6379" for n in sorted(masters)]


def test_gateway_and_workers_share_the_command_key(services: dict[str, dict[str, Any]]) -> None:
    # Commands are signed by the gateway and checked by the workers: unless a key is set,
    # both must see the same key file, made once in a volume they share at GRIDWATCH_HOME.
    home = env_of(services["gateway"]).get("GRIDWATCH_HOME", "/var/lib/gridwatch")
    mounts = {}
    for name in ("gateway", "worker"):
        assert "GRIDWATCH_COMMAND_KEYS" in env_of(services[name])
        found = [v.split(":", 1)[0] for v in services[name].get("volumes", [])
                 if isinstance(v, str) and v.split(":")[1] == home]
        assert found, f"{name} has no volume at {home}"
        mounts[name] = found[0]
    assert mounts["gateway"] == mounts["worker"]
