"""Imports go one way: down the layers of docs/architecture.md ("Layers").

Every module of the installed package is read (its AST: imports inside functions and
``TYPE_CHECKING`` blocks count too) and each import of another gridwatch module is
checked against the layers::

    schemas  <-  core  <-  streams  <-  agents | ws  <-  shells

A module may import from a lower layer, and from its own layer (agents and ws are one
layer but two parts: neither imports the other). Nothing in the package imports
``tests`` or ``bench``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]

#: The layers, lowest first, and the parts of each (a part imports only itself and below).
SCHEMAS, CORE, STREAMS, SERVICES, SHELLS = range(5)
LAYER_NAMES = ("schemas", "core", "streams", "agents/ws", "shells")

#: The modules of gridwatch/ that are shells: commands, the local stack, the demo.
SHELL_MODULES = frozenset({"cli", "cli_ops", "cli_silence", "cli_users", "demo", "crew", "story",
                           "stack", "stack_kafka", "stack_proc", "stack_redis"})
#: The modules of gridwatch/ that are the core every part builds on.
CORE_MODULES = frozenset({"__init__", "alert_export", "risk", "trace_access", "batch", "calendars", "city", "command_keys", "heap",
                          "grid_index", "keys", "logs", "queries", "redis_client",
                          "settings", "signing", "station_view", "store"})
SUB_PACKAGES = {"gridwatch.schemas": SCHEMAS, "gridwatch.streams": STREAMS,
                "gridwatch.agents": SERVICES, "gridwatch.ws": SERVICES}
FORBIDDEN_TOPS = ("tests", "bench")


def package_dirs() -> dict[str, Path]:
    """The installed packages and their folders, as pyproject.toml maps them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {name: ROOT / folder
            for name, folder in project["tool"]["setuptools"]["package-dir"].items()}


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    out = {}
    for package, folder in package_dirs().items():
        for path in sorted(folder.glob("*.py")):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def part_of(module: str) -> tuple[int, str]:
    """(layer, part) of a gridwatch module.

    Raises:
        LookupError: a module of gridwatch/ that is in no layer yet.
    """
    for package, layer in SUB_PACKAGES.items():
        if module == package or module.startswith(package + "."):
            return layer, package
    name = module.split(".")[1] if "." in module else "__init__"
    if name in CORE_MODULES:
        return CORE, "core"
    if name in SHELL_MODULES:
        return SHELLS, "shells"
    raise LookupError(f"{module} is in no layer: add it to CORE_MODULES or SHELL_MODULES "
                      "of tests/unit/test_layers.py (and to docs/architecture.md)")


def imports(module: str, source: str, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, imported module) of every import in ``source``, at any depth."""
    is_package = module in SUB_PACKAGES or module == "gridwatch"
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if sub in known else target


def violations(module: str, source: str, known: set[str]) -> list[str]:
    """What ``module`` imports against the direction, one line each."""
    layer, part = part_of(module)
    out = []
    for line, target in sorted(set(imports(module, source, known))):
        top = target.split(".")[0]
        if top in FORBIDDEN_TOPS:
            out.append(f"{module}:{line} imports {target}: the package never imports {top}/")
            continue
        if top != "gridwatch":
            continue
        their_layer, their_part = part_of(target)
        if their_layer < layer or their_part == part:
            continue
        out.append(f"{module}:{line} imports {target}: {LAYER_NAMES[layer]} ({part}) may not "
                   f"import {LAYER_NAMES[their_layer]} ({their_part})")
    return out


def test_every_package_folder_is_read() -> None:
    assert set(package_dirs()) == {"gridwatch", *SUB_PACKAGES}
    assert len(modules()) > 80


def test_every_module_is_in_a_layer() -> None:
    for name in modules():
        part_of(name)  # LookupError names the module


def test_no_module_imports_against_the_direction() -> None:
    found = modules()
    known = set(found)
    bad = [v for name, path in found.items()
           for v in violations(name, path.read_text(), known)]
    assert bad == [], "imports against the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("gridwatch.store", "from .agents.fold import BatchUpdate\n",
     ("gridwatch.store:1 imports gridwatch.agents.fold: core (core) may not import "
      "agents/ws (gridwatch.agents)")),
    ("gridwatch.settings", "def f():\n    from .agents import forecast\n",
     "gridwatch.settings:2 imports gridwatch.agents.forecast"),
    ("gridwatch.streams.admin", "from ..stack_kafka import replication_for\n",
     "gridwatch.streams.admin:1 imports gridwatch.stack_kafka: streams"),
    ("gridwatch.ws.hub", "from gridwatch.agents import fold\n",
     "gridwatch.ws.hub:1 imports gridwatch.agents.fold: agents/ws (gridwatch.ws)"),
    ("gridwatch.agents.fold", "import tests.drill\n",
     "gridwatch.agents.fold:1 imports tests.drill: the package never imports tests/"),
    ("gridwatch.schemas.events", "from ..keys import CORE\n",
     "gridwatch.schemas.events:1 imports gridwatch.keys: schemas"),
])
def test_an_import_against_the_direction_is_named(module: str, source: str,
                                                  expected: str) -> None:
    found = violations(module, source, set(modules()))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_imports_down_and_within_a_part_pass() -> None:
    known = set(modules())
    source = ("from .. import keys\nfrom ..streams import topics\nfrom .fold import fold_batch\n"
              "from ..schemas.events import decode\nimport orjson\n")
    assert violations("gridwatch.agents.ingest", source, known) == []
    assert violations("gridwatch.cli", "from .agents.worker import run\n", known) == []
    assert violations("gridwatch.store", "from .batch import BatchUpdate\n", known) == []


def test_a_new_module_outside_every_layer_is_refused() -> None:
    with pytest.raises(LookupError, match="gridwatch.newthing is in no layer"):
        part_of("gridwatch.newthing")
