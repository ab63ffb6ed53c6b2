#!/usr/bin/env bash
# Installs what gridwatch needs on a Debian/Ubuntu machine and is missing, then fetches
# the Kafka broker's jars. Safe to run again: it only installs what is missing.
#
#   bash scripts/setup.sh                  install only (what CI runs)
#   bash scripts/setup.sh --demo [ARGS]    install, then run `gridwatch demo [ARGS]`
#                                          (stack, worker, gateway, a simulated city;
#                                          prints the cockpit URL and login links)
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=0
if [ "${1:-}" = "--demo" ]; then
  DEMO=1
  shift
elif [ $# -gt 0 ]; then
  echo "usage: bash scripts/setup.sh [--demo [gridwatch demo options]]" >&2
  exit 2
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: gridwatch needs Python 3.11 or newer as $PY (set PYTHON=... to pick one)" >&2
  exit 1
fi

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v chromium >/dev/null || missing+=(chromium)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "setup: installing gridwatch and its Python dependencies (pip)"
if ! "$PY" -m pip install -q --disable-pip-version-check -e '.[test,forecast]'; then
  # e.g. Debian's own Python, which refuses pip installs (PEP 668)
  echo "setup: pip could not install into $PY; use a virtualenv:" >&2
  echo "       $PY -m venv .venv && . .venv/bin/activate, then run this again" >&2
  exit 1
fi

if [ -f package.json ]; then
  # postinstall copies the libraries into ws/static/vendor/ (ws/build_static.py)
  if [ -f ws/static/vendor/echarts.min.js ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    echo "setup: the cockpit's front-end libraries are installed"
  else
    echo "setup: installing the cockpit's front-end libraries (npm)"
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
  fi
fi

echo "setup: fetching the Kafka broker (Maven Central), once"
"$PY" -m gridwatch.cli stack fetch

if [ "$DEMO" -eq 1 ]; then
  echo "setup: done; starting the demo (Ctrl-C stops it)"
  exec "$PY" -m gridwatch.cli demo "$@"
fi
echo "setup: done. The demo: bash scripts/setup.sh --demo (or gridwatch demo); the tests: python3 -m pytest"
