#!/usr/bin/env bash
# Installs everything gridwatch needs on a fresh Debian/Ubuntu machine, then fetches
# the Kafka broker's jars. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

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

PY=${PYTHON:-python3}
echo "setup: installing gridwatch and its Python dependencies (pip)"
$PY -m pip install -q --disable-pip-version-check -e '.[test,forecast]'

if [ -f package.json ]; then
  echo "setup: installing the cockpit's front-end libraries (npm)"
  # postinstall copies the libraries into ws/static/vendor/ (ws/build_static.py)
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
fi

echo "setup: fetching the Kafka broker (Maven Central), once"
gridwatch stack fetch
echo "setup: done. Next: gridwatch demo"
