#!/usr/bin/env bash
# Redis for the tests: redis-server (and redis-benchmark) from Debian's
# package, and one server per datacenter on loopback.
#
#   scripts/redis.sh start   installs redis-server when missing, starts one
#                            server for unicom and one for telecom on free
#                            loopback ports, and prints the exports to eval:
#                            DCSYNC_REDIS_SERVER, REDIS_MQ_UNICOM_REDIS,
#                            REDIS_MQ_TELECOM_REDIS, DCSYNC_REDIS_RUN
#   scripts/redis.sh stop    stops the servers of $DCSYNC_REDIS_RUN and
#                            removes their data
#
# `go run ./examples/redis-mq` uses the two servers when the exports are
# set (its test starts servers of its own, as it writes into them).
# Tests that kill and restart a server (transport/redis's fault tests)
# start servers of their own through internal/testserver, which needs only
# the binary. Only the export lines go to stdout.
set -euo pipefail

log() { echo "redis.sh: $*" >&2; }
die() { log "$*"; exit 1; }

port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

install() {
  if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then return; fi
  log "installing redis-server from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq redis-server redis-tools >&2
  # The package starts a system-wide server; the tests do not use it.
  $sudo systemctl stop redis-server >/dev/null 2>&1 || $sudo service redis-server stop >/dev/null 2>&1 || true
}

# serve DC DIR starts DC's server on the first free port from 6390 and
# prints its address.
serve() {
  local dc=$1 dir=$2 port
  mkdir -p "$dir/$dc"
  for port in $(seq 6390 6489) 0; do
    [ "$port" != 0 ] || die "no free port in 6390..6489"
    port_busy "$port" && continue
    if redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$dc" --appendonly yes --appendfsync everysec \
      --save "" --protected-mode no --daemonize yes --pidfile "$dir/$dc/pid" --logfile "$dir/$dc/redis.log" >&2; then
      for _ in $(seq 1 100); do
        if port_busy "$port"; then echo "127.0.0.1:$port"; return; fi
        sleep 0.05
      done
    fi
    log "redis-server for $dc did not come up on port $port; trying the next"
  done
}

start() {
  install
  local dir addrs=()
  dir=$(mktemp -d /tmp/dcsync-redis-XXXXXX)
  for dc in unicom telecom; do
    addrs+=("$(serve "$dc" "$dir")")
    log "$dc's redis-server on ${addrs[-1]} (data in $dir/$dc)"
  done
  echo "export DCSYNC_REDIS_SERVER=$(command -v redis-server)"
  echo "export REDIS_MQ_UNICOM_REDIS=${addrs[0]} REDIS_MQ_TELECOM_REDIS=${addrs[1]}"
  echo "export DCSYNC_REDIS_RUN=$dir"
}

stop() {
  local dir=${DCSYNC_REDIS_RUN:-} pid f
  [ -n "$dir" ] && [ -d "$dir" ] || { log "nothing to stop: DCSYNC_REDIS_RUN names no run of this script"; return; }
  for f in "$dir"/*/pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) die "usage: $0 start|stop" ;;
esac
