#!/usr/bin/env bash
# Chromium for the status page's browser test (admin): Debian's chromium
# package, run headless by the test itself.
#
#   scripts/chromium.sh start   installs chromium when missing and prints the
#                               export to eval: DCSYNC_CHROMIUM (its path)
#   scripts/chromium.sh stop    nothing to stop: each test runs its own
#                               browser process
#
# Only the export line goes to stdout.
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

find_chromium() { command -v chromium || command -v chromium-browser || true; }

install() {
  if [ -n "$(find_chromium)" ]; then return; fi
  log "installing chromium from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
}

case "${1:-}" in
  start)
    install
    bin=$(find_chromium)
    [ -n "$bin" ] || { log "chromium not found after installing"; exit 1; }
    echo "export DCSYNC_CHROMIUM=$bin"
    ;;
  stop) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
