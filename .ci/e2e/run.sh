#!/usr/bin/env bash
# End-to-end test of the browser client in headless Chromium against the real server.
# Idempotent and non-interactive: installs what is missing (Debian), builds the server, runs the test.
# Screenshots and the server log land in .ci/out/.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
export CHROMIUM_PATH
if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "e2e: installing chromium"
  apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "e2e: installing node and npm"
  apt_install nodejs npm
fi

cd "$HERE"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

cd "$ROOT"
if [ -z "${CHAT_SERVER_BIN:-}" ]; then
  echo "e2e: building the server (release)"
  cargo build --release -p chat-server
fi

mkdir -p "$ROOT/.ci/out"
cd "$HERE"
echo "e2e: running the browser test"
node --test --test-concurrency=1 --test-reporter=spec e2e.mjs
