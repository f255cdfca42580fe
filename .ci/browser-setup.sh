#!/usr/bin/env bash
# Installs what the chat example's browser test (examples/chat/tests/browser.rs) needs,
# and nothing else. Idempotent: each step runs only when its result is missing.
#
#   - Debian's Chromium at /usr/bin/chromium (`apt-get install -y chromium`); the test
#     never uses a browser downloaded by npm.
#   - The npm packages of examples/chat/browser (playwright-core only), exactly as locked in
#     examples/chat/browser/package-lock.json (`npm ci`, install scripts disabled).
#
# Needs root (or sudo) for apt-get, and node + npm on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "browser-setup: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "need root to run: $*"
    return 1
  fi
}

if [ -x /usr/bin/chromium ]; then
  log "chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
  log "installing Debian's chromium (apt-get install -y chromium)"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
  if [ ! -x /usr/bin/chromium ]; then
    log "apt-get install chromium did not provide /usr/bin/chromium"
    exit 1
  fi
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "node and npm are required (e.g. apt-get install -y nodejs npm)"
  exit 1
fi

lock=examples/chat/browser/package-lock.json
installed=examples/chat/browser/node_modules/.package-lock.json
if [ -f examples/chat/browser/node_modules/playwright-core/package.json ] \
  && [ -f "$installed" ] && [ "$installed" -nt "$lock" ]; then
  log "examples/chat/browser/node_modules up to date"
else
  log "npm ci --prefix examples/chat/browser"
  npm ci --prefix examples/chat/browser --ignore-scripts --no-audit --no-fund
fi
