"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path


def py_spy() -> str | None:
    """The py-spy executable: on PATH, or beside this Python (a virtualenv's bin/)."""
    found = shutil.which("py-spy")
    beside = Path(sys.executable).parent / "py-spy"
    return found or (str(beside) if beside.exists() else None)


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


def py_spy_top(raw: Path, limit: int = 25) -> list[str]:
    """The functions with the most samples (self and total) of a py-spy ``raw`` file."""
    self_n: Counter[str] = Counter()
    total_n: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        samples += count
        frames = stack.split(";")
        self_n[frames[-1]] += count
        for f in set(frames):
            total_n[f] += count
    out = [f"{samples} samples; most self time:"]
    out += [f"  {n / samples:6.1%}  {f}" for f, n in self_n.most_common(limit)]
    out.append("most total time (inclusive):")
    out += [f"  {n / samples:6.1%}  {f}" for f, n in total_n.most_common(limit)]
    return out
