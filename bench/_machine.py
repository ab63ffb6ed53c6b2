"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def versions(names: Iterable[str]) -> list[str]:
    """``"name version"`` of each installed distribution (``(absent)`` if missing)."""
    out = []
    for name in names:
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{name} (absent)")
    return out


def kafka_version(home: Path) -> str:
    """The Kafka broker version of a local stack, from its jar's name."""
    jars = sorted((home / "kafka" / "lib").glob("kafka_2.13-*.jar"))
    return jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "?"
