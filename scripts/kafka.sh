#!/usr/bin/env bash
# Apache Kafka for the tests: one single-node KRaft broker (combined broker
# and controller) per datacenter, on loopback.
#
#   scripts/kafka.sh start       fetches the broker's jars when missing, starts
#                                a broker for unicom and one for telecom on free
#                                loopback ports, and prints the exports to eval:
#                                DCSYNC_KAFKA_BROKERS_A (unicom's),
#                                DCSYNC_KAFKA_BROKERS_B (telecom's),
#                                DCSYNC_KAFKA_RUN
#   scripts/kafka.sh stop        stops the brokers of $DCSYNC_KAFKA_RUN and
#                                removes their data
#   scripts/kafka.sh kill DC     kill -9s DC's broker of $DCSYNC_KAFKA_RUN
#   scripts/kafka.sh resume DC   starts DC's broker again, on its port, with
#                                its data (the tests' broker restarts)
#   scripts/kafka.sh mirrormaker PROPS
#                                runs Kafka's MirrorMaker 2 (dedicated mode) in
#                                the foreground with PROPS, logging next to it;
#                                its jars (org.apache.kafka:connect-mirror) are
#                                fetched once like the broker's (the benchmark's
#                                mirrormaker2 row)
#
# Java 17 and Maven come from Debian's packages when missing. The jars come
# from Maven Central through `mvn dependency:copy-dependencies`
# of org.apache.kafka:kafka_2.13 and kafka-server (with log4j2 as the SLF4J
# binding), once per version, into $DCSYNC_CACHE (default /var/tmp/dcsync).
# Brokers run with small heaps (DCSYNC_KAFKA_HEAP, default 256m). Everything
# of a run (config, data, logs, pids) lives in $DCSYNC_KAFKA_RUN. Only the
# export lines go to stdout; everything else to stderr.
set -euo pipefail

KAFKA_VERSION=${DCSYNC_KAFKA_VERSION:-4.1.0}
LOG4J_VERSION=2.24.3
CACHE=${DCSYNC_CACHE:-/var/tmp/dcsync}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
MIRROR=$CACHE/kafka-$KAFKA_VERSION/mirror
HEAP=${DCSYNC_KAFKA_HEAP:-256m}
STARTUP_TIMEOUT=${DCSYNC_KAFKA_TIMEOUT:-120}

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# fetch copies the broker's jars and their runtime dependencies into LIBS,
# unless an earlier run did; with "mirror", MirrorMaker 2's into MIRROR.
fetch() {
  local into=$LIBS artifacts="kafka_2.13 kafka-server"
  if [ "${1:-}" = mirror ]; then into=$MIRROR artifacts=connect-mirror; fi
  local pkgs=()
  command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || [ -f "$into/.complete" ] || pkgs+=(maven)
  if [ ${#pkgs[@]} -gt 0 ]; then
    log "installing ${pkgs[*]} from Debian's packages"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >&2
  fi
  [ -f "$into/.complete" ] && return
  log "fetching Kafka $KAFKA_VERSION's $artifacts jars with mvn into $into"
  local dir tmp deps="" a
  for a in $artifacts; do
    deps+="<dependency><groupId>org.apache.kafka</groupId><artifactId>$a</artifactId><version>$KAFKA_VERSION</version></dependency>"
  done
  dir=$(dirname "$into")
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/fetch.XXXXXX")
  cat >"$tmp/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dcsync</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    $deps
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  (cd "$tmp" && mvn -q dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2) ||
    { rm -rf "$tmp"; die "mvn could not fetch Kafka $KAFKA_VERSION"; }
  touch "$tmp/libs/.complete"
  rm -rf "$into"
  mv "$tmp/libs" "$into" 2>/dev/null || [ -f "$into/.complete" ] # another start won the race
  rm -rf "$tmp"
}

# free_port FROM prints the first free port from FROM on that no other
# broker of this run has taken.
free_port() {
  local port
  for port in $(seq "$1" $(($1 + 199))); do
    port_busy "$port" && continue
    grep -qx "$port" "$RUN"/*/ports 2>/dev/null && continue
    echo "$port"
    return
  done
  die "no free port in $1..$(($1 + 199))"
}

# java_cmd DC sets JAVA to the command that runs a class of the broker's
# jars for DC.
java_cmd() {
  JAVA=(java "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseSerialGC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$RUN/$1/log4j2.properties" -cp "$LIBS/*")
}

# log_config FILE LOG writes a log4j2 configuration to FILE that logs
# warnings and errors to LOG.
log_config() {
  cat >"$1" <<PROPS
appender.file.type=File
appender.file.name=file
appender.file.fileName=$2
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=file
PROPS
}

# configure DC writes DC's config and formats its storage.
configure() {
  local dc=$1 port cport d=$RUN/$1
  mkdir -p "$d/data"
  port=$(free_port 19092)
  echo "$port" >"$d/ports"
  cport=$(free_port 19092)
  echo "$cport" >>"$d/ports"
  cat >"$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.consumer.session.timeout.ms=45000
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=4
background.threads=2
log.retention.hours=1
log.segment.bytes=67108864
# The cleaner (of compacted topics: the group offsets) takes 128 MiB of
# heap by default.
log.cleaner.dedupe.buffer.size=8388608
PROPS
  log_config "$d/log4j2.properties" "$d/server.log"
  local id
  java_cmd "$dc"
  id=$("${JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$d/server.log")
  "${JAVA[@]}" kafka.tools.StorageTool format -t "$id" -c "$d/server.properties" >>"$d/server.log" 2>&1 ||
    { tail -n 30 "$d/server.log" >&2; die "could not format $dc's storage"; }
}

# serve DC starts DC's configured broker and waits until it takes
# connections.
serve() {
  local dc=$1 d=$RUN/$1 port
  port=$(head -1 "$d/ports")
  java_cmd "$dc"
  nohup "${JAVA[@]}" kafka.Kafka "$d/server.properties" >>"$d/stdout.log" 2>&1 </dev/null &
  echo $! >"$d/pid"
  local deadline=$((SECONDS + STARTUP_TIMEOUT))
  until port_busy "$port"; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then
      tail -n 30 "$d/stdout.log" "$d/server.log" >&2 || true
      die "$dc's broker did not come up on port $port"
    fi
    sleep 0.2
  done
  log "$dc's broker on 127.0.0.1:$port (data in $d)"
}

start() {
  fetch
  RUN=$(mktemp -d /tmp/dcsync-kafka-XXXXXX)
  # A start that fails stops what it started and removes its run.
  trap 'rc=$?; [ $rc -eq 0 ] || DCSYNC_KAFKA_RUN=$RUN stop' EXIT
  # Concurrent starts (test packages run in parallel) take turns from
  # choosing ports to binding them, so that they do not choose the same.
  exec 9>/tmp/dcsync-kafka.lock
  flock 9
  for dc in unicom telecom; do configure "$dc"; done
  for dc in unicom telecom; do serve "$dc"; done
  flock -u 9
  echo "export DCSYNC_KAFKA_BROKERS_A=127.0.0.1:$(head -1 "$RUN/unicom/ports") DCSYNC_KAFKA_BROKERS_B=127.0.0.1:$(head -1 "$RUN/telecom/ports")"
  echo "export DCSYNC_KAFKA_RUN=$RUN"
}

# halt DC SIGNAL stops DC's broker with SIGNAL and waits until it is gone.
halt() {
  local f=$RUN/$1/pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  kill "-$2" "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$f"
}

need_run() {
  RUN=${DCSYNC_KAFKA_RUN:-}
  [ -n "$RUN" ] && [ -d "$RUN" ] || die "DCSYNC_KAFKA_RUN names no run of this script"
}

stop() {
  RUN=${DCSYNC_KAFKA_RUN:-}
  [ -n "$RUN" ] && [ -d "$RUN" ] || { log "nothing to stop: DCSYNC_KAFKA_RUN names no run of this script"; return; }
  local d
  for d in "$RUN"/*/; do halt "$(basename "$d")" TERM; done
  rm -rf "$RUN"
}

# mirrormaker PROPS runs MirrorMaker 2 with PROPS until it is killed.
mirrormaker() {
  local props=$1 d
  [ -f "$props" ] || die "usage: $0 mirrormaker PROPS"
  fetch mirror
  d=$(cd "$(dirname "$props")" && pwd)
  log_config "$d/mm2-log4j2.properties" "$d/mm2.log"
  exec java "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseSerialGC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$d/mm2-log4j2.properties" -cp "$MIRROR/*" \
    org.apache.kafka.connect.mirror.MirrorMaker "$props"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
kill) need_run && [ -d "$RUN/${2:-}" ] || die "usage: $0 kill DC"; halt "$2" KILL ;;
resume)
  need_run && [ -d "$RUN/${2:-}" ] || die "usage: $0 resume DC"
  exec 9>/tmp/dcsync-kafka.lock
  flock 9
  serve "$2"
  ;;
mirrormaker) mirrormaker "${2:-}" ;;
*) die "usage: $0 start|stop|kill DC|resume DC|mirrormaker PROPS" ;;
esac
