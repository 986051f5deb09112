#!/usr/bin/env bash
# Runs every fuzz target for a short while (FUZZTIME each, default 5s):
# the decoders of everything that comes from outside a process. Their seed
# corpora also run with every go test; this explores beyond them. A failing
# input is written to the package's testdata/fuzz, where go test replays it.
#
#   scripts/fuzz.sh              every target
#   FUZZTIME=1m scripts/fuzz.sh  longer
#
# The Redis and Elasticsearch packages' TestMain need the environment of
# scripts/redis.sh and scripts/elastic.sh only for their other tests; the
# fuzz targets touch no server (scripts/test.sh runs this with both up).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
targets=$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./bench/' | sort)
for file in $targets; do
  pkg=./$(dirname "${file#./}")
  for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    echo "fuzz: $pkg $name ($fuzztime)"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
  done
done
