#!/usr/bin/env bash
# Runs every test: starts the servers the tests need (scripts/<service>.sh
# start prints the environment to use), runs go vet and the race-enabled
# tests of every module, and stops the servers on the way out.
set -euo pipefail
cd "$(dirname "$0")/.."

started=()
cleanup() {
  for svc in "${started[@]}"; do scripts/$svc.sh stop || true; done
}
trap cleanup EXIT
for svc in redis elastic chromium kafka; do
  if [ -x "scripts/$svc.sh" ]; then
    env_lines=$(scripts/$svc.sh start)
    eval "$env_lines"
    started+=("$svc")
  fi
done

fmt=$(gofmt -l .)
if [ -n "$fmt" ]; then echo "gofmt would change: $fmt" >&2; exit 1; fi
go vet ./...
go test -race -count=1 -timeout 12m ./... "$@"
scripts/fuzz.sh # every fuzz target for a few seconds
if [ -f bench/go.mod ]; then
  (cd bench && go vet ./... && go test -count=1 -timeout 8m ./...)
fi
