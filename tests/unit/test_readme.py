"""The README and docs/: short, every local link resolves, and the two commands it gives
are the ones CI runs and the setup script understands.

A moved section leaves a pointer behind; a renamed file or a changed command would
otherwise leave the first page a user reads quietly wrong.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from gridwatch import settings as settings_mod

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _quick_start_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _ci_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines
            if line.strip().startswith(("bash ", "python3 "))]


def test_the_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) <= 300


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_local_link_resolves(page: Path) -> None:
    links = LINK.findall(page.read_text())
    broken = []
    for target in links:
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert broken == [], f"{page.name} links to missing files: {broken}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_code_block_is_closed(page: Path) -> None:
    fences = [line for line in page.read_text().splitlines() if line.startswith("```")]
    assert len(fences) % 2 == 0, f"{page.name}: a code block is never closed"


def test_the_readme_points_to_every_docs_page() -> None:
    linked = {(ROOT / target).resolve() for target in LINK.findall(README.read_text())}
    assert [p.name for p in DOCS if p.resolve() not in linked] == []


def test_the_quick_start_is_two_commands_and_ci_runs_the_same_ones() -> None:
    quick = _quick_start_commands()
    assert quick == ["bash scripts/setup.sh --demo", "python3 -m pytest"]
    # CI runs the same script without the demo (no terminal there), lints, then runs the
    # same tests.
    assert _ci_commands() == ["bash scripts/setup.sh", "python3 -m ruff check", quick[1]]


def test_setup_runs_the_demo_only_when_asked() -> None:
    script = (ROOT / "scripts" / "setup.sh").read_text()
    demo = script.index('exec "$PY" -m gridwatch.cli demo "$@"')
    guard = script.rindex('if [ "$DEMO" -eq 1 ]; then', 0, demo)
    assert script.count("gridwatch.cli demo") == 1 and guard < demo
    # An unknown first argument is refused before anything is installed.
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--demos"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_the_settings_page_names_only_settings_the_code_has() -> None:
    page = (ROOT / "docs" / "settings.md").read_text()
    named = set(re.findall(r"`(GRIDWATCH_[A-Z_]+)`", page))
    assert named, "docs/settings.md names no setting"
    assert sorted(n for n in named if n not in (settings_mod.__doc__ or "")) == []


def test_the_forecast_summary_points_to_its_method() -> None:
    text = README.read_text()
    assert "[docs/forecast.md](docs/forecast.md)" in text
    method = (ROOT / "docs" / "forecast.md").read_text()
    assert method.startswith("# Station forecasts")
    assert "seasonal blend" in method and "split-conformal" in method
