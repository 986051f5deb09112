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
#   scripts/redis.sh cluster-start
#                            starts a Redis Cluster of three masters, each
#                            with a replica, on free loopback ports
#                            (--cluster-enabled yes, redis-cli --cluster
#                            create ... --cluster-replicas 1), waits until
#                            it serves every slot and every replica is in
#                            sync, and prints the exports:
#                            DCSYNC_REDIS_CLUSTER (its addresses, comma
#                            separated) and DCSYNC_REDIS_CLUSTER_RUN (its
#                            directory: <dir>/<port>/{pid,redis.log,...});
#                            with DCSYNC_REDIS_CLUSTER_RUN set, it runs there
#   scripts/redis.sh cluster-stop
#                            stops the cluster of $DCSYNC_REDIS_CLUSTER_RUN
#                            and removes its data
#   scripts/redis.sh cluster-restart PORT
#                            starts the node of PORT of that cluster again
#                            (after a kill: it rejoins, as a replica when
#                            its replica took over meanwhile)
#
# Servers keep an append-only file (appendonly yes, appendfsync everysec),
# as dcsync's streams need in production: a restart keeps the streams, and
# the Nodes' start-up check (CONFIG GET) finds nothing to warn about.
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

# cluster_serve DIR starts a cluster node on the first port from 7000 whose
# cluster bus port (port + 10000) is free too, and prints its port.
cluster_serve() {
  local dir=$1 port
  for port in $(seq 7000 7999) 0; do
    [ "$port" != 0 ] || die "no free port pair in 7000..7999"
    [ -e "$dir/$port" ] && continue
    port_busy "$port" && continue
    port_busy $((port + 10000)) && continue
    if cluster_node "$dir" "$port"; then echo "$port"; return; fi
    log "cluster node did not come up on port $port; trying the next"
  done
}

# cluster_node DIR PORT starts (or restarts, with its data and nodes.conf)
# the cluster node of PORT and waits until it listens.
cluster_node() {
  local dir=$1 port=$2
  mkdir -p "$dir/$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" --cluster-enabled yes \
    --cluster-config-file nodes.conf --cluster-node-timeout 1000 --repl-diskless-sync-delay 0 \
    --appendonly yes --appendfsync everysec \
    --save "" --protected-mode no --daemonize yes --pidfile "$dir/$port/pid" --logfile "$dir/$port/redis.log" >&2 || return 1
  # The port may have been taken meanwhile by another run's server: ours is
  # the one that answers with our directory.
  for _ in $(seq 1 100); do
    if port_busy "$port"; then
      [ "$(redis-cli -h 127.0.0.1 -p "$port" config get dir 2>/dev/null | tail -n 1)" = "$dir/$port" ] && return 0
    fi
    sleep 0.05
  done
  return 1
}

cluster_start() {
  install
  local dir=${DCSYNC_REDIS_CLUSTER_RUN:-} addrs=() port
  [ -n "$dir" ] || dir=$(mktemp -d /tmp/dcsync-redis-cluster-XXXXXX)
  mkdir -p "$dir"
  # Concurrent runs (test packages run in parallel) pick ports one at a time.
  exec 9>/tmp/dcsync-redis-cluster.lock
  flock 9
  for _ in 1 2 3 4 5 6; do
    port=$(cluster_serve "$dir")
    addrs+=("127.0.0.1:$port")
  done
  flock -u 9
  timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >&2 ||
    die "redis-cli --cluster create failed or hung in $dir"
  # Every node must see every slot served, and every master's replica be
  # in sync, before clients may rely on the cluster.
  local ok info
  for _ in $(seq 1 300); do
    ok=1
    for a in "${addrs[@]}"; do
      redis-cli -h 127.0.0.1 -p "${a##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || { ok=0; break; }
      # A master's replica must be in sync, or a WAIT for it fails.
      info=$(redis-cli -h 127.0.0.1 -p "${a##*:}" info replication 2>/dev/null) || { ok=0; break; }
      if grep -q '^role:master' <<<"$info" && ! grep -q '^slave0:.*state=online' <<<"$info"; then ok=0; break; fi
    done
    [ $ok = 1 ] && break
    sleep 0.1
  done
  [ $ok = 1 ] || die "the cluster in $dir did not reach cluster_state:ok"
  log "Redis Cluster on ${addrs[*]} (data in $dir)"
  echo "export DCSYNC_REDIS_CLUSTER=$(IFS=,; echo "${addrs[*]}")"
  echo "export DCSYNC_REDIS_CLUSTER_RUN=$dir"
}

# cluster_stop kills the cluster's nodes: its data goes with them, so they
# need not wait for their replicas.
cluster_stop() {
  DCSYNC_REDIS_RUN=${DCSYNC_REDIS_CLUSTER_RUN:-} stop KILL
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

# stop [SIGNAL] stops the servers of $DCSYNC_REDIS_RUN, all at once, with
# SIGNAL (default TERM; KILL after 5s), and removes their data.
stop() {
  local dir=${DCSYNC_REDIS_RUN:-} sig=${1:-TERM} pid f alive pids=()
  [ -n "$dir" ] && [ -d "$dir" ] || { log "nothing to stop: DCSYNC_REDIS_RUN names no run of this script"; return; }
  for f in "$dir"/*/pid; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  for pid in "${pids[@]}"; do kill "-$sig" "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.05
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
cluster-start) cluster_start ;;
cluster-stop) cluster_stop ;;
cluster-restart)
  [ -n "${2:-}" ] && [ -d "${DCSYNC_REDIS_CLUSTER_RUN:-}/$2" ] || die "usage: $0 cluster-restart PORT, with DCSYNC_REDIS_CLUSTER_RUN set"
  cluster_node "$DCSYNC_REDIS_CLUSTER_RUN" "$2" || die "cluster node $2 did not come back" ;;
*) die "usage: $0 start|stop|cluster-start|cluster-stop|cluster-restart PORT" ;;
esac
