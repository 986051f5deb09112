#!/usr/bin/env bash
# Runs a single-node Elasticsearch 7.17 for the tests, on loopback.
#
#   scripts/elastic.sh start   starts a node, prints `export DCSYNC_ELASTIC_URL=http://127.0.0.1:PORT`
#   scripts/elastic.sh stop    stops the node of $DCSYNC_ELASTIC_URL and removes its data
#
# Every start runs a node of its own, so that concurrent test runs do not
# stop each other's. Its HTTP port is $DCSYNC_ELASTIC_PORT, or else the first
# free one of 9200..9299. Everything of a node (config, data, logs, pid)
# lives in $DCSYNC_ELASTIC_RUN, by default /tmp/dcsync-elastic-PORT; stop
# finds it from the port of $DCSYNC_ELASTIC_URL, which the eval of start's
# output has set.
#
# Elasticsearch comes from Maven Central's integ-test-zip distribution through
# mvn (cached in ~/.m2); OpenSearch's integ-test-zip when that cannot be had.
# The zip is unpacked once per version under $DCSYNC_CACHE (default
# /var/tmp/dcsync). Elasticsearch refuses to run as root, so as root the node
# runs as the system user dcsync-es, created when missing. Only the export
# line goes to stdout; everything else to stderr.
set -euo pipefail

ES_VERSION=${DCSYNC_ES_VERSION:-7.17.29}
OS_VERSION=${DCSYNC_OPENSEARCH_VERSION:-2.19.1}
CACHE=${DCSYNC_CACHE:-/var/tmp/dcsync}
RUN_BASE=/tmp/dcsync-elastic
RUN=${DCSYNC_ELASTIC_RUN:-}
HEAP=${DCSYNC_ELASTIC_HEAP:-512m}
ES_USER=dcsync-es
STARTUP_TIMEOUT=${DCSYNC_ELASTIC_TIMEOUT:-180}

log() { echo "elastic.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# http_get PORT PATH prints the response body of a GET, with bash's /dev/tcp
# only, so no curl is needed.
http_get() {
  timeout 10 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
    sed "1,/^\r\{0,1\}$/d" <&3' _ "$1" "$2" 2>/dev/null
}

port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# healthy PORT reports whether the node answers with status yellow or green.
healthy() {
  http_get "$1" "/_cluster/health?wait_for_status=yellow&timeout=1s" | grep -Eq '"status":"(yellow|green)"'
}

# java_home prints a Java home that Elasticsearch 7 runs on (11 to 21: later
# ones dropped the security manager it needs).
java_home() {
  local c v
  for c in "${ES_JAVA_HOME:-}" "${JAVA_HOME:-}" \
    "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")" \
    /usr/lib/jvm/*; do
    [ -n "$c" ] && [ -x "$c/bin/java" ] || continue
    v=$("$c/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
    if [ -n "$v" ] && [ "$v" -ge 11 ] && [ "$v" -le 21 ]; then echo "$c"; return; fi
  done
  die "no Java 11..21 found (set ES_JAVA_HOME)"
}

# fetch prints the path of the distribution zip and its kind, via mvn.
fetch() {
  local m2 zip
  m2=${DCSYNC_M2_REPO:-$HOME/.m2/repository}
  zip=$m2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip
  if [ ! -f "$zip" ]; then
    log "fetching Elasticsearch $ES_VERSION integ-test-zip with mvn"
    mvn -q dependency:get -Dtransitive=false \
      -Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip >&2 || true
  fi
  if [ -f "$zip" ]; then echo "elasticsearch-$ES_VERSION $zip"; return; fi
  zip=$m2/org/opensearch/distribution/integ-test-zip/opensearch/$OS_VERSION/opensearch-$OS_VERSION.zip
  if [ ! -f "$zip" ]; then
    log "Elasticsearch unavailable; fetching OpenSearch $OS_VERSION integ-test-zip with mvn"
    mvn -q dependency:get -Dtransitive=false \
      -Dartifact=org.opensearch.distribution.integ-test-zip:opensearch:$OS_VERSION:zip >&2 || true
  fi
  [ -f "$zip" ] || die "neither Elasticsearch $ES_VERSION nor OpenSearch $OS_VERSION could be fetched"
  echo "opensearch-$OS_VERSION $zip"
}

# unpack ZIP DIR extracts ZIP's single top directory as DIR, atomically, with
# whichever unzipper the machine has.
unpack() {
  local zip=$1 dir=$2 tmp
  mkdir -p "$(dirname "$dir")"
  chmod a+rx "$(dirname "$dir")" # the node's user must reach it, whatever the umask
  tmp=$(mktemp -d "$dir.tmp.XXXXXX")
  if command -v unzip >/dev/null; then
    unzip -q "$zip" -d "$tmp"
  elif command -v python3 >/dev/null; then
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$tmp"
  elif command -v jar >/dev/null; then
    (cd "$tmp" && jar xf "$zip")
  else
    log "installing unzip from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq unzip >&2
    unzip -q "$zip" -d "$tmp"
  fi
  # Python and jar drop the mode bits; the node's user needs to read it all.
  chmod -R a+rX "$tmp"
  chmod a+x "$tmp"/*/bin/*
  mv "$tmp"/* "$dir" 2>/dev/null || [ -d "$dir" ] # another start won the race
  rm -rf "$tmp"
}

# claim DIR makes DIR the run directory of a new node, unless a live node
# owns it; a directory left by a node that died is taken over.
claim() {
  if [ -e "$1" ]; then
    if [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; then return 1; fi
    rm -rf "$1"
  fi
  mkdir "$1" 2>/dev/null || return 1 # atomic: of two starts, one wins
  echo $$ >"$1/pid"                   # ours until the node writes its own
}

# tools installs a JDK and Maven from Debian's packages when missing.
tools() {
  local pkgs=() sudo=""
  command -v java >/dev/null || [ -n "${ES_JAVA_HOME:-}" ] || pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  [ ${#pkgs[@]} -gt 0 ] || return 0
  log "installing ${pkgs[*]} from Debian's packages"
  [ "$(id -u)" = 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >&2
}

start() {
  local port kind zip dir jhome owner
  tools
  read -r kind zip < <(fetch) || true
  [ -n "${zip:-}" ] || die "no distribution to run"
  dir=$CACHE/$kind
  [ -x "$dir/bin/${kind%%-*}" ] || unpack "$zip" "$dir"
  jhome=$(java_home)

  port=${DCSYNC_ELASTIC_PORT:-}
  if [ -n "$port" ]; then
    RUN=${RUN:-$RUN_BASE-$port}
    [ -n "${DCSYNC_ELASTIC_RUN:-}" ] || claim "$RUN" || die "port $port is taken by the node in $RUN"
  else
    for port in $(seq 9200 9299) 0; do
      [ "$port" != 0 ] || die "no free port in 9200..9299"
      port_busy "$port" && continue
      if [ -n "${DCSYNC_ELASTIC_RUN:-}" ]; then break; fi
      RUN=$RUN_BASE-$port
      claim "$RUN" && break
    done
  fi
  rm -rf "${RUN:?}"/{data,logs,config}
  mkdir -p "$RUN"/{data,logs}
  cp -r "$dir/config" "$RUN/config"
  # The JVM's own files are relative to the (read-only, shared) home.
  sed -i -e "s#HeapDumpPath=data#HeapDumpPath=$RUN/data#" -e "s#logs/#$RUN/logs/#g" "$RUN/config/jvm.options"
  cat >>"$RUN/config/${kind%%-*}.yml" <<EOF

cluster.name: dcsync-test
node.name: dcsync-test
network.host: 127.0.0.1
http.port: $port
transport.port: 9300-9399
discovery.type: single-node
path.data: $RUN/data
path.logs: $RUN/logs
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
  if [ "${kind%%-*}" = elasticsearch ]; then # OpenSearch's zip has no security plugin to turn off
    echo "xpack.security.enabled: false" >>"$RUN/config/elasticsearch.yml"
  fi
  echo "$port" >"$RUN/port"

  owner=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    id "$ES_USER" >/dev/null 2>&1 ||
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$ES_USER"
    owner=$ES_USER
    chown -R "$ES_USER" "$RUN"
    chmod 755 "$RUN"
  fi
  log "starting $kind on 127.0.0.1:$port as $owner (data in $RUN)"
  local env=(env "ES_JAVA_HOME=$jhome" "OPENSEARCH_JAVA_HOME=$jhome" "JAVA_HOME=$jhome"
    "ES_PATH_CONF=$RUN/config" "OPENSEARCH_PATH_CONF=$RUN/config"
    "ES_JAVA_OPTS=-Xms$HEAP -Xmx$HEAP" "OPENSEARCH_JAVA_OPTS=-Xms$HEAP -Xmx$HEAP")
  local cmd=("$dir/bin/${kind%%-*}" -d -p "$RUN/pid")
  if [ "$(id -u)" = 0 ]; then
    (cd "$RUN" && runuser -u "$ES_USER" -- "${env[@]}" "${cmd[@]}") >"$RUN/logs/stdout.log" 2>&1 ||
      { cat "$RUN/logs/stdout.log" >&2; die "$kind did not start"; }
  else
    (cd "$RUN" && "${env[@]}" "${cmd[@]}") >"$RUN/logs/stdout.log" 2>&1 ||
      { cat "$RUN/logs/stdout.log" >&2; die "$kind did not start"; }
  fi

  local deadline=$((SECONDS + STARTUP_TIMEOUT))
  until healthy "$port"; do
    if [ $SECONDS -ge $deadline ] || { [ -f "$RUN/pid" ] && ! kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }; then
      tail -n 50 "$RUN"/logs/*.log >&2 || true
      stop
      die "$kind on port $port did not become healthy"
    fi
    sleep 1
  done
  log "$kind healthy on port $port"
  echo "export DCSYNC_ELASTIC_URL=http://127.0.0.1:$port"
}

stop() {
  local pid i port
  if [ -z "$RUN" ]; then
    port=$(echo "${DCSYNC_ELASTIC_URL:-}" | sed -n 's#^http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p')
    [ -n "$port" ] || { log "nothing to stop: DCSYNC_ELASTIC_URL names no node of this script"; return; }
    RUN=$RUN_BASE-$port
  fi
  if [ -f "$RUN/pid" ]; then
    pid=$(cat "$RUN/pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$RUN"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) die "usage: $0 start|stop" ;;
esac
