#!/usr/bin/env bash
# make fuzz: a short run of every fuzz target (FUZZTIME to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
t="${FUZZTIME:-30s}"
go test -run '^$' -fuzz '^FuzzUnpack$' -fuzztime "$t" ./imagestore
go test -run '^$' -fuzz '^FuzzResolve$' -fuzztime "$t" ./templates
go test -run '^$' -fuzz '^FuzzDecodePod$' -fuzztime "$t" ./internal/store
