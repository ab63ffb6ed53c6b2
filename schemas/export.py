"""Write the JSON Schema files of the v1 input events (``gridwatch schemas export``)."""

from __future__ import annotations

from pathlib import Path

import orjson

from .events import FIELDS, json_schema

HERE = Path(__file__).resolve().parent / "jsonschema"


def write_all(folder: Path = HERE) -> list[Path]:
    """Write one ``<kind>.v1.json`` per input event kind; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for cls in FIELDS:
        path = folder / f"{cls.KIND}.v1.json"
        path.write_bytes(orjson.dumps(json_schema(cls), option=orjson.OPT_INDENT_2) + b"\n")
        written.append(path)
    return written
