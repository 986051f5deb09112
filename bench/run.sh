#!/usr/bin/env bash
# Reproduces BENCHMARKS.md in one command:
#
#   bench/run.sh [OUT_DIR] [dcsync-bench flags...]
#
# installs redis-server and redis-benchmark when missing, starts an
# Elasticsearch node and two Kafka brokers of its own (so that their CPU is
# this run's alone), runs dcsync-bench with a CPU profile per target, and writes to
# OUT_DIR (default bench/results): results.json, table.md, profiles/,
# top.txt, the top functions of each CPU profile, and heap.txt, what holds
# the heap at the end of each full-speed phase. The servers are stopped on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/bench/results}" && cd "${1:-$root/bench/results}" && pwd)
shift || true

# Servers of its own: each start runs new ones, and stop finds them by the
# variables it exported.
unset DCSYNC_ELASTIC_URL DCSYNC_ELASTIC_RUN DCSYNC_REDIS_RUN DCSYNC_KAFKA_RUN
eval "$("$root/scripts/redis.sh" start)"
trap '"$root/scripts/redis.sh" stop' EXIT
eval "$("$root/scripts/elastic.sh" start)"
trap '"$root/scripts/elastic.sh" stop; "$root/scripts/redis.sh" stop' EXIT
eval "$("$root/scripts/kafka.sh" start)"
trap '"$root/scripts/kafka.sh" stop; "$root/scripts/elastic.sh" stop; "$root/scripts/redis.sh" stop' EXIT

cd "$root/bench"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
go run . -json "$out/results.json" -md "$out/table.md" -cpuprofile "$out/profiles" -memprofile "$out/profiles/heap" "$@" | tee "$out/table.txt" || status=$?
for p in "$out"/profiles/*.pprof; do  # CPU profiles; heap ones are in profiles/heap
  echo "== $(basename "$p" .pprof)"
  go tool pprof -top -nodecount=20 "$p" 2>/dev/null | sed -n '/^Duration/p;/flat%/,$p'
  echo "-- garbage collection and allocation, cumulative"
  go tool pprof -top -cum "$p" 2>/dev/null | grep -E ' (runtime\.gcBgMarkWorker|runtime\.mallocgc)$' || true
  echo "-- by cumulative time, runtime hidden"
  go tool pprof -top -cum -nodecount=30 -hide='^runtime|^internal/runtime|^sync\.|^main\.|^syscall|gcWriteBarrier|aeshash|memeqbody' \
    "$p" 2>/dev/null | sed -n '/flat%/,$p'
  echo
done >"$out/top.txt"
for p in "$out"/profiles/heap/*.pprof; do
  echo "== heap in use at the end of $(basename "$p" .pprof)"
  go tool pprof -sample_index=inuse_space -top -nodecount=10 "$p" 2>/dev/null | sed -n '/flat%/,$p'
done >"$out/heap.txt"
echo "wrote $out/results.json, table.md, table.txt, top.txt, heap.txt, profiles/" >&2
exit $status
