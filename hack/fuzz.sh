#!/usr/bin/env bash
# make fuzz: every fuzz target in the module, each for FUZZTIME (default
# 30s), then a table of executions per target. A crasher fails the run and
# is left in the package's testdata/fuzz/<Target>/ to become a regression
# test (go test runs that corpus on every plain run).
set -euo pipefail
cd "$(dirname "$0")/.."
t="${FUZZTIME:-30s}"
# Minimizing is capped: with the default (60s) a worker spends a short
# -fuzztime shrinking the first input that finds new coverage, and the
# execution count stops after a few seconds. A crasher is still minimized
# for this long before it is written out.
m="${FUZZMINIMIZETIME:-1s}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
summary=()
status=0
while IFS=: read -r file target; do
	pkg="./$(dirname "$file")"
	echo "fuzz: $pkg $target for $t"
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$t" -fuzzminimizetime "$m" "$pkg" 2>&1 | tee "$log"; then
		status=1
	fi
	execs="$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
	summary+=("$(printf '%-28s %-26s %s execs' "$pkg" "$target" "${execs:-0}")")
done < <(grep -rHoE '^func (Fuzz[A-Za-z0-9_]+)' --include='*_test.go' . | sed 's|^\./||; s|:func |:|' | sort)
echo
echo "fuzz targets ($t each):"
printf '  %s\n' "${summary[@]}"
exit "$status"
