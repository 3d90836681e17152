#!/usr/bin/env bash
# Install everything the tests need, then run them: `bash scripts/test.sh [pytest args]`.
# - Debian's chromium (browser-demo and browser-benchmark tests), redis-server (the Redis
#   store's tests), nginx (the deployment test) and iproute2 (`ip`/`tc`: the
#   network-profile benchmark builds a tbf link in namespaces of its own), via apt-get
#   when one is missing;
# - Debian's nodejs and npm when missing, and tests/node's packages (the Node openai SDK,
#   the AI SDK's `ai` and `ws` for its WebSocketChatTransport) from its lockfile;
# - the package with its [test] extras, via pip;
# then ruff, mypy and pytest. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

MISSING=""
command -v chromium >/dev/null 2>&1 || MISSING="$MISSING chromium"
command -v redis-server >/dev/null 2>&1 || MISSING="$MISSING redis-server"
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || MISSING="$MISSING nginx"
{ command -v ip && command -v tc; } >/dev/null 2>&1 || MISSING="$MISSING iproute2"
if [ -n "$MISSING" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "== installing Debian's$MISSING (browser, Redis, nginx and network-profile tests)"
  $SUDO apt-get update -qq
  # policy-rc.d: install the packages without starting their system services
  # (the tests start their own redis-server and nginx on free ports).
  POLICY=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    POLICY=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
  [ -z "$POLICY" ] || $SUDO rm -f "$POLICY"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "== installing Debian's nodejs and npm (the Node openai SDK test)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
echo "== installing the Node SDKs: openai, ai, ws (tests/node)"
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
echo "== installing the Node.js benchmark peer's ws package (benchmarks/peers/node)"
npm ci --prefix benchmarks/peers/node --no-audit --no-fund --loglevel=error

echo "== installing twinstream with its test extras"
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"
python3 -m ruff check .
echo "== mypy"
python3 -m mypy
echo "== pytest"
python3 -m pytest "$@"
