"""Settings: one typed object from the environment, errors naming the variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from gridwatch.schemas.errors import ConfigError

from gridwatch import settings as settings_mod
from gridwatch.settings import DATA_DIR, Settings, load


def test_an_empty_environment_gives_the_local_stack_defaults() -> None:
    s = load({})
    assert s == Settings()
    assert s.kafka == "127.0.0.1:19092"
    assert s.redis == "redis://127.0.0.1:16379/0"
    assert s.grids == DATA_DIR / "grids.geojson" and s.grids.exists()
    assert s.city == DATA_DIR / "city.json" and s.city.exists()
    assert s.partitions == 8
    assert s.grace_s == 600.0
    assert s.batch == 2000
    assert (s.gateway_host, s.gateway_port) == ("127.0.0.1", 8765)
    assert s.web_origins == ("http://127.0.0.1:8765", "http://localhost:8765")
    assert s.group == "gridwatch-worker"
    assert (s.kafka_port, s.redis_port) == (19092, 16379)
    assert (s.tz, s.calendar) == ("Asia/Shanghai", "CN")
    assert s.kafka_heap == ""  # the stack's own per-node defaults
    assert s.gateway_procs == (os.cpu_count() or 1)


def test_every_variable_is_read() -> None:
    env = {
        "GRIDWATCH_KAFKA": "kafka-1:9092,kafka-2:9092",
        "GRIDWATCH_REDIS": "redis://redis:6380/2",
        "GRIDWATCH_GRIDS": "/srv/district/grids.geojson",
        "GRIDWATCH_CITY": "/srv/district/city.json",
        "GRIDWATCH_PARTITIONS": "16",
        "GRIDWATCH_HOME": "/var/lib/gridwatch",
        "GRIDWATCH_GRACE_S": "90.5",
        "GRIDWATCH_BATCH": "500",
        "GRIDWATCH_GATEWAY": "0.0.0.0:9000",
        "GRIDWATCH_WEB_ORIGIN": "https://cockpit.example.org, https://backup.example.org ,",
        "GRIDWATCH_TRACE_DAYS": "21",
        "GRIDWATCH_GROUP": "district-7",
        "GRIDWATCH_TZ": "Asia/Urumqi",
        "GRIDWATCH_CALENDAR": "none",
        "GRIDWATCH_KAFKA_HEAP": "-Xms512m -Xmx2g",
        "GRIDWATCH_GATEWAY_PROCS": "3",
    }
    s = load(env)
    assert s.kafka == "kafka-1:9092,kafka-2:9092"
    assert s.kafka_port == 9092
    assert s.redis == "redis://redis:6380/2" and s.redis_port == 6380
    assert s.grids == Path("/srv/district/grids.geojson")
    assert s.city == Path("/srv/district/city.json")
    assert s.partitions == 16
    assert s.home == Path("/var/lib/gridwatch")
    assert s.grace_s == 90.5
    assert s.batch == 500
    assert (s.gateway_host, s.gateway_port) == ("0.0.0.0", 9000)
    assert s.web_origins == ("https://cockpit.example.org", "https://backup.example.org")
    assert s.trace_days == 21
    assert s.group == "district-7"
    assert s.tz == "Asia/Urumqi"
    assert s.calendar is None
    assert s.kafka_heap == "-Xms512m -Xmx2g"
    assert s.gateway_procs == 3
    assert load({"GRIDWATCH_GATEWAY_PROCS": "1"}).gateway_procs == 1
    assert load({"GRIDWATCH_CALENDAR": " cn "}).calendar == "CN"
    assert load({"GRIDWATCH_CALENDAR": "nz-auk"}).calendar == "NZ-AUK"


def test_the_docstring_table_lists_exactly_the_variables_load_reads() -> None:
    import inspect

    documented = set(re.findall(r"^(GRIDWATCH_[A-Z_]+)\s", settings_mod.__doc__ or "", re.MULTILINE))
    read = set(re.findall(r'"(GRIDWATCH_[A-Z_]+)"', inspect.getsource(load)))
    assert documented == read
    assert {"GRIDWATCH_KAFKA", "GRIDWATCH_REDIS", "GRIDWATCH_GRIDS",
            "GRIDWATCH_PARTITIONS"} <= read


def test_empty_values_mean_the_default() -> None:
    s = load({"GRIDWATCH_KAFKA": "", "GRIDWATCH_PARTITIONS": "", "GRIDWATCH_GRACE_S": "",
              "GRIDWATCH_GROUP": ""})
    assert (s.kafka, s.partitions, s.grace_s, s.group) == (
        "127.0.0.1:19092", 8, 600.0, "gridwatch-worker")


def test_the_origins_follow_the_gateway_address_unless_given() -> None:
    s = load({"GRIDWATCH_GATEWAY": "10.0.0.5:8080"})
    assert s.web_origins == ("http://10.0.0.5:8080", "http://localhost:8080")


def test_a_redis_url_without_a_port_means_6379() -> None:
    assert load({"GRIDWATCH_REDIS": "redis://cache/0"}).redis_port == 6379


@pytest.mark.parametrize(("name", "value", "words"), [
    ("GRIDWATCH_PARTITIONS", "eight", "whole number"),
    ("GRIDWATCH_PARTITIONS", "0", "at least 1"),
    ("GRIDWATCH_PARTITIONS", "-3", "at least 1"),
    ("GRIDWATCH_PARTITIONS", "2.5", "whole number"),
    ("GRIDWATCH_BATCH", "lots", "whole number"),
    ("GRIDWATCH_BATCH", "0", "at least 1"),
    ("GRIDWATCH_TRACE_DAYS", "1w", "whole number"),
    ("GRIDWATCH_GRACE_S", "ten", "number"),
    ("GRIDWATCH_GRACE_S", "-1", "negative"),
    ("GRIDWATCH_GATEWAY", "8765", "host:port"),
    ("GRIDWATCH_GATEWAY", "localhost:http", "host:port"),
    ("GRIDWATCH_GATEWAY", ":8765", "host:port"),
    ("GRIDWATCH_KAFKA", "localhost", "host:port"),
    ("GRIDWATCH_REDIS", "127.0.0.1:6379", "redis://"),
    ("GRIDWATCH_REDIS", "http://127.0.0.1:6379", "redis://"),
    ("GRIDWATCH_TZ", "Asia/Atlantis", "time zone"),
    ("GRIDWATCH_TZ", "+08:00", "time zone"),
    ("GRIDWATCH_CALENDAR", "lunar", "holiday calendar"),
    ("GRIDWATCH_GATEWAY_PROCS", "0", "at least 1"),
    ("GRIDWATCH_GATEWAY_PROCS", "two", "whole number"),
])
def test_a_malformed_variable_is_named_in_the_error(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({name: value})
    message = str(info.value)
    assert message.startswith(f"{name}=")
    assert repr(value) in message
    assert words in message


def test_public_masks_the_redis_password() -> None:
    s = load({"GRIDWATCH_REDIS": "redis://gridwatch:s3cr3t-pw@redis.internal:6380/1"})
    public = s.public()
    assert public["redis"] == "redis://***@redis.internal:6380/1"
    assert "s3cr3t-pw" not in repr(public)
    assert "gridwatch:" not in str(public["redis"])
    assert s.redis_port == 6380


def test_public_masks_a_password_only_url_and_tls_urls() -> None:
    public = load({"GRIDWATCH_REDIS": "rediss://:hunter2@10.1.1.1:6379/0"}).public()
    assert public["redis"] == "rediss://***@10.1.1.1:6379/0"
    assert "hunter2" not in repr(public)


def test_public_leaves_a_url_without_credentials_alone() -> None:
    public = load({}).public()
    assert public["redis"] == "redis://127.0.0.1:16379/0"
    assert public["kafka"] == "127.0.0.1:19092"
    assert public["gateway"] == "127.0.0.1:8765"
    assert public["partitions"] == 8


def test_with_makes_a_changed_copy() -> None:
    s = load({})
    t = s.with_(group="other", partitions=3)
    assert (t.group, t.partitions) == ("other", 3)
    assert (s.group, s.partitions) == ("gridwatch-worker", 8)
    with pytest.raises(AttributeError):
        s.group = "x"  # type: ignore[misc]


def test_load_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_PARTITIONS", "3")
    monkeypatch.setenv("GRIDWATCH_GROUP", "from-env")
    s = load()
    assert (s.partitions, s.group) == (3, "from-env")


def test_the_faust_app_keeps_its_data_directory_under_the_gridwatch_home(tmp_path: Path) -> None:
    from gridwatch.streams.app import make_app

    home = tmp_path / "new-home"
    app = make_app(load({"GRIDWATCH_HOME": str(home)}), app_id="gridwatch-test-x")
    assert Path(app.conf.datadir) == home / "faust" / "gridwatch-test-x-data"
    app._create_directories()  # what the worker does when it starts
    assert (home / "faust" / "gridwatch-test-x-data").is_dir()
