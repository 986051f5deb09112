#!/usr/bin/env bash
# Installs redis-server (and redis-benchmark) from Debian's package when missing.
# Tests start their own redis-server processes on free loopback ports
# (internal/testserver), so there is nothing to start or stop here.
set -euo pipefail
case "${1:-start}" in
start)
  if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq redis-server redis-tools >&2
    # The package starts a system-wide server; the tests do not use it.
    $sudo systemctl stop redis-server >/dev/null 2>&1 || $sudo service redis-server stop >/dev/null 2>&1 || true
  fi
  echo "export DCSYNC_REDIS_SERVER=$(command -v redis-server)"
  ;;
stop) ;;
esac
