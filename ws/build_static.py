"""Copy the front-end libraries from node_modules/ into ws/static/vendor/.

Run by ``npm install`` (postinstall) or by hand: ``python ws/build_static.py``. The
cockpit loads them from its own origin, so no page fetches anything from the internet.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "ws" / "static" / "vendor"
FILES = {
    "echarts.min.js": ROOT / "node_modules" / "echarts" / "dist" / "echarts.min.js",
    "ECHARTS-LICENSE.txt": ROOT / "node_modules" / "echarts" / "LICENSE",
}


def main() -> int:
    """Copy every vendor file; a missing one is an error naming the npm step."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    for name, source in FILES.items():
        if not source.exists():
            print(f"missing {source}: run `npm install` in {ROOT}", file=sys.stderr)
            return 1
        shutil.copyfile(source, VENDOR / name)
        print(f"{VENDOR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
