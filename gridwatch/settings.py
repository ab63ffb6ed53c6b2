"""Settings: one frozen, typed object built once from the environment.

Every process (worker, gateway, CLI) builds :class:`Settings` at start with
:func:`load` and passes it down; nothing deeper reads the environment. Defaults point
at the local stack that ``gridwatch stack up`` starts.

Environment variables (all optional):

=========================  ==================================================  ======================
variable                   meaning                                             default
=========================  ==================================================  ======================
GRIDWATCH_KAFKA            Kafka bootstrap servers                             127.0.0.1:19092
GRIDWATCH_REDIS            Redis URL                                           redis://127.0.0.1:16379/0
GRIDWATCH_GRIDS            grids GeoJSON                                       the bundled district
GRIDWATCH_CITY             city file (checkpoints, cameras, stations)          the bundled district
GRIDWATCH_PARTITIONS       partitions of every topic                           8
GRIDWATCH_HOME             local stack data, logs, pids                        <checkout>/.local
GRIDWATCH_GRACE_S          event-time grace for late events, seconds           600
GRIDWATCH_BATCH            events per worker batch                             2000
GRIDWATCH_GATEWAY          gateway listen address host:port                    127.0.0.1:8765
GRIDWATCH_WEB_ORIGIN       allowed browser Origin(s), comma separated          http://127.0.0.1:8765
GRIDWATCH_TRACE_DAYS       how long person traces are kept                     14
GRIDWATCH_GROUP            the workers' Kafka consumer group                   gridwatch-worker
GRIDWATCH_TIMERS           run escalation and liveness timers (1/0)            1
GRIDWATCH_WORKER_HTTP      worker metrics and health, host:port (0 = off;      127.0.0.1:9464
                           a taken port: the next free one, up to 20 above)
GRIDWATCH_LOG_FORMAT       text, or json (one JSON object per line)            text
GRIDWATCH_TZ               the district's time zone (IANA name): the days and  Asia/Shanghai
                           dates station forecasts see
GRIDWATCH_CALENDAR         holidays that move, matched across past years by    CN
                           station forecasts: CN (lunar festivals), a country
                           code with an optional region (NZ-AUK, US-MN, GB)
                           or none
GRIDWATCH_REDIS_CLUSTER    Redis Cluster seed nodes host:port[,host:port...];  (none: one Redis)
                           when set, clients are RedisCluster ones
GRIDWATCH_REPLICATION      replication factor of the topics gridwatch creates  0: min(3, brokers)
GRIDWATCH_MIN_INSYNC       min.insync.replicas of those topics                 0: 2 when RF >= 3,
                                                                               else 1
GRIDWATCH_KAFKA_HEAP       JVM heap flags of each Kafka node the local stack   -Xms256m -Xmx1g; in a
                           starts                                              cluster -Xms128m
                                                                               -Xmx384m each
GRIDWATCH_COMMAND_KEYS     command signing keys, key_id:secret[,...]; the      a key made once under
                           first signs, all verify (never printed)             GRIDWATCH_HOME
GRIDWATCH_COMMAND_KEY_FILE a file of such keys, one a line (instead of the     the same
                           variable above)
GRIDWATCH_PUBLIC_URL       the cockpit's address as users reach it (login      http://<GRIDWATCH_GATEWAY>
                           links; https makes the cookie Secure, __Host-)
GRIDWATCH_CMD_RATE         cockpit commands a second per user (all sockets)    10
GRIDWATCH_CMD_BURST        commands a user may send at once                    20
GRIDWATCH_USER_SOCKETS     open sockets per user, per gateway process          20
GRIDWATCH_GATEWAY_PROCS    gateway processes sharing the port (SO_REUSEPORT;   the number of cores
                           1: one process, no supervisor)
GRIDWATCH_AUTH_FAIL_RATE   failed logins/session checks a second per address   1
GRIDWATCH_AUTH_FAIL_BURST  failed checks an address may make at once           30
GRIDWATCH_TRACE_LOOKUPS    trace lookups an hour per user, per gateway process 60
GRIDWATCH_TRACE_BURST      trace lookups a user may make at once               10
GRIDWATCH_SESSION_RECHECK  seconds between re-checks of an open socket's       60
                           session and the user's rights
GRIDWATCH_TIME_MIN_YEAR    earliest year (UTC) of any time in an input event   2000
GRIDWATCH_TIME_MAX_YEAR    latest year (UTC) of any time in an input event     2100
GRIDWATCH_MAX_FUTURE_S     how far an event's ts may be ahead of the wall      300
                           clock, seconds; the feed clock (escalations,
                           liveness) never runs further ahead either
GRIDWATCH_RISK_EVERY_S     shortest time between two risk scores of one grid,  1
                           seconds: a grid changed by every batch is scored
                           at most this often (0: after every batch)
=========================  ==================================================  ======================
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import calendars
from .schemas.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"


def _default_home() -> Path:
    # In a checkout, keep the stack's data beside the code (git-ignored .local/);
    # installed elsewhere, under the user's data folder.
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").exists():
        return checkout / ".local"
    return Path.home() / ".local" / "share" / "gridwatch"


@dataclass(frozen=True)
class Settings:
    """Everything a gridwatch process needs to know, fixed at start."""

    kafka: str = "127.0.0.1:19092"
    redis: str = "redis://127.0.0.1:16379/0"
    grids: Path = DATA_DIR / "grids.geojson"
    city: Path = DATA_DIR / "city.json"
    partitions: int = 8
    home: Path = field(default_factory=_default_home)
    grace_s: float = 600.0
    batch: int = 2000
    batch_within_s: float = 0.05
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8765
    web_origins: tuple[str, ...] = ("http://127.0.0.1:8765", "http://localhost:8765")
    trace_days: int = 14
    group: str = "gridwatch-worker"
    timers: bool = True
    worker_http: str = "127.0.0.1:9464"
    log_format: str = "text"
    tz: str = "Asia/Shanghai"
    calendar: str | None = "CN"
    # Redis Cluster and replicated Kafka (0 = derived from the cluster; see the table).
    redis_cluster: tuple[str, ...] = ()
    replication: int = 0
    min_insync: int = 0
    kafka_heap: str = ""  # "" means the stack's defaults (gridwatch.stack_kafka.heap)
    # Command signing (gridwatch.command_keys): secrets, so kept out of repr and public().
    command_keys: str = field(default="", repr=False)
    command_key_file: Path | None = None
    public_url: str = ""  # "" means http://<gateway_host>:<gateway_port>
    cmd_rate: float = 10.0
    cmd_burst: float = 20.0
    user_sockets: int = 20
    gateway_procs: int = field(default_factory=lambda: os.cpu_count() or 1)
    auth_fail_rate: float = 1.0
    auth_fail_burst: float = 30.0
    trace_lookups: float = 60.0  # an hour, per user
    trace_burst: float = 10.0
    session_recheck_s: float = 60.0
    time_min_year: int = 2000
    time_max_year: int = 2100
    max_future_s: float = 300.0
    risk_every_s: float = 1.0

    @property
    def kafka_port(self) -> int:
        return int(self.kafka.split(",")[0].rsplit(":", 1)[1])

    @property
    def redis_port(self) -> int:
        rest = self.redis.split("://", 1)[-1].split("/", 1)[0]
        return int(rest.rsplit(":", 1)[1]) if ":" in rest else 6379

    def public(self) -> dict[str, object]:
        """The settings as plain data, with any password in a URL masked."""
        redis = self.redis
        if "@" in redis:
            scheme, rest = redis.split("://", 1)
            redis = f"{scheme}://***@{rest.split('@', 1)[1]}"
        return {
            "kafka": self.kafka,
            "redis": redis,
            "grids": str(self.grids),
            "city": str(self.city),
            "partitions": self.partitions,
            "home": str(self.home),
            "grace_s": self.grace_s,
            "gateway": f"{self.gateway_host}:{self.gateway_port}",
        }

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (for tests and sub-commands)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, lo: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if value < lo:
        raise ConfigError(f"{name}={raw!r}: must be at least {lo}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r}: must not be negative")
    return value


def _public_url(raw: str) -> str:
    """The cockpit's public address without a trailing slash, http(s) only ("": unset)."""
    url = raw.strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")) or "://" == url[-3:]:
        raise ConfigError(f"GRIDWATCH_PUBLIC_URL={raw!r}: expected http(s)://host[:port]")
    return url


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment.

    Raises:
        ConfigError: a variable is malformed, with the variable named.
    """
    env = os.environ if env is None else env
    base = Settings()
    gateway = env.get("GRIDWATCH_GATEWAY", f"{base.gateway_host}:{base.gateway_port}")
    host, _, port = gateway.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"GRIDWATCH_GATEWAY={gateway!r}: expected host:port")
    origins = env.get("GRIDWATCH_WEB_ORIGIN")
    settings = Settings(
        kafka=env.get("GRIDWATCH_KAFKA") or base.kafka,
        redis=env.get("GRIDWATCH_REDIS") or base.redis,
        grids=Path(env.get("GRIDWATCH_GRIDS") or base.grids),
        city=Path(env.get("GRIDWATCH_CITY") or base.city),
        partitions=_int(env, "GRIDWATCH_PARTITIONS", base.partitions),
        home=Path(env.get("GRIDWATCH_HOME") or base.home),
        grace_s=_float(env, "GRIDWATCH_GRACE_S", base.grace_s),
        batch=_int(env, "GRIDWATCH_BATCH", base.batch),
        gateway_host=host,
        gateway_port=int(port),
        web_origins=(
            tuple(o.strip() for o in origins.split(",") if o.strip())
            if origins
            else (f"http://{host}:{port}", f"http://localhost:{port}")
        ),
        trace_days=_int(env, "GRIDWATCH_TRACE_DAYS", base.trace_days),
        group=env.get("GRIDWATCH_GROUP") or base.group,
        worker_http=env.get("GRIDWATCH_WORKER_HTTP") or base.worker_http,
        timers=env.get("GRIDWATCH_TIMERS", "1").strip().lower() not in ("0", "false", "no", "off"),
        log_format=(env.get("GRIDWATCH_LOG_FORMAT") or base.log_format).strip().lower(),
        tz=(env.get("GRIDWATCH_TZ") or base.tz).strip(),
        calendar=env.get("GRIDWATCH_CALENDAR") or base.calendar or "none",
        command_keys=(env.get("GRIDWATCH_COMMAND_KEYS") or "").strip(),
        command_key_file=(Path(env["GRIDWATCH_COMMAND_KEY_FILE"])
                          if env.get("GRIDWATCH_COMMAND_KEY_FILE") else None),
        public_url=_public_url(env.get("GRIDWATCH_PUBLIC_URL") or ""),
        cmd_rate=_float(env, "GRIDWATCH_CMD_RATE", base.cmd_rate),
        cmd_burst=max(1.0, _float(env, "GRIDWATCH_CMD_BURST", base.cmd_burst)),
        user_sockets=_int(env, "GRIDWATCH_USER_SOCKETS", base.user_sockets),
        gateway_procs=_int(env, "GRIDWATCH_GATEWAY_PROCS", base.gateway_procs),
        auth_fail_rate=_float(env, "GRIDWATCH_AUTH_FAIL_RATE", base.auth_fail_rate),
        auth_fail_burst=max(1.0, _float(env, "GRIDWATCH_AUTH_FAIL_BURST", base.auth_fail_burst)),
        trace_lookups=max(0.0, _float(env, "GRIDWATCH_TRACE_LOOKUPS", base.trace_lookups)),
        trace_burst=max(1.0, _float(env, "GRIDWATCH_TRACE_BURST", base.trace_burst)),
        session_recheck_s=max(0.1, _float(env, "GRIDWATCH_SESSION_RECHECK",
                                          base.session_recheck_s)),
        time_min_year=_int(env, "GRIDWATCH_TIME_MIN_YEAR", base.time_min_year),
        time_max_year=_int(env, "GRIDWATCH_TIME_MAX_YEAR", base.time_max_year),
        max_future_s=_float(env, "GRIDWATCH_MAX_FUTURE_S", base.max_future_s),
        risk_every_s=_float(env, "GRIDWATCH_RISK_EVERY_S", base.risk_every_s),
    )
    if settings.command_keys:
        from .signing import Keyring

        Keyring.parse(settings.command_keys)  # malformed: a ConfigError that names no secret
    if not settings.time_min_year <= settings.time_max_year <= 9998:
        raise ConfigError(f"GRIDWATCH_TIME_MIN_YEAR={settings.time_min_year}, "
                          f"GRIDWATCH_TIME_MAX_YEAR={settings.time_max_year}: "
                          "expected min <= max <= 9998")
    try:
        settings = replace(settings, calendar=calendars.check(settings.calendar))
    except calendars.CalendarError as exc:
        raise ConfigError(f"GRIDWATCH_CALENDAR={settings.calendar!r}: {exc}") from None
    try:
        zoneinfo.ZoneInfo(settings.tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"GRIDWATCH_TZ={settings.tz!r}: not a known time zone (e.g. Asia/Shanghai)") from None
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"GRIDWATCH_LOG_FORMAT={settings.log_format!r}: expected text or json")
    if ":" not in settings.kafka:
        raise ConfigError(f"GRIDWATCH_KAFKA={settings.kafka!r}: expected host:port")
    if not settings.redis.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"GRIDWATCH_REDIS={settings.redis!r}: expected a redis:// URL")
    settings = replace(
        settings,
        redis_cluster=_nodes(env, "GRIDWATCH_REDIS_CLUSTER"),
        replication=_int(env, "GRIDWATCH_REPLICATION", base.replication, lo=0),
        min_insync=_int(env, "GRIDWATCH_MIN_INSYNC", base.min_insync, lo=0),
        kafka_heap=(env.get("GRIDWATCH_KAFKA_HEAP") or "").strip(),
    )
    return settings


def _nodes(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated host:port list, each port checked (a typo here would only show
    as a connection failure much later)."""
    nodes = tuple(n.strip() for n in (env.get(name) or "").split(",") if n.strip())
    for node in nodes:
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}={env.get(name)!r}: expected host:port[,host:port...]")
    return nodes
