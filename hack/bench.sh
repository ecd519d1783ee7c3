#!/usr/bin/env bash
# make bench: prints the figures each issue asks for. Run as root on a quiet
# machine; every figure is measured in this run, against its baseline where
# the issue names one.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-bin/pinacle-node}"
only="${1:-all}"
section() { printf '\n== %s\n' "$*"; }
# A section whose command fails (or prints none of its figures) fails the
# run, after the others have printed theirs.
status=0
failed=()
trap 'status=1; failed+=("line $LINENO")' ERR

# Transparent huge pages change sandbox start by about 15% here (see
# docs/runtime.md, Host tuning): print the mode with the figures, and let
# BENCH_THP=always|madvise|never set it for this run only.
thp=/sys/kernel/mm/transparent_hugepage/enabled
if [ -n "${BENCH_THP:-}" ]; then
	old_thp="$(sed -E 's/.*\[([a-z]+)\].*/\1/' "$thp")"
	echo "$BENCH_THP" > "$thp" || exit 1
	trap 'echo "$old_thp" > "$thp"' EXIT
fi
echo "host: transparent_hugepage $(cat "$thp" 2>/dev/null || echo unknown), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
want() { [ "$only" = all ] || [ "$only" = "$1" ]; }

if want image; then
	section "issue 2: pull + unpack of a ~200 MB multi-layer image vs skopeo copy + umoci unpack (loopback registry)"
	go run ./imagestore/bench -runs 3
fi
if want run; then
	section "issue 2: pinacle-node run IMAGE true (cached) beside runsc alone"
	go run ./hack/benchrun -bin "$BIN" -n 20
	section "issue 2: pod rootfs creation, small vs 200 MB image (independent of size)"
	go test -run '^$' -bench 'Mount' -benchtime 20x ./rootfs/ | grep -E 'Benchmark|rootfs-bench|_test.go:|FAIL'
	section "issue 2: runsc via oci/ (create+start, exec true)"
	go test -run '^$' -bench . -benchtime 20x ./oci/ | grep -E 'Benchmark|oci-bench|_test.go:|FAIL'
fi
if want net; then
	section "issue 3: netns + CNI setup and teardown per pod"
	go test -run '^$' -bench . -benchtime 20x ./netns/ | grep -E 'Benchmark|netns-bench'
	section "issue 3: port forwarder, userspace relay (throughput on loopback, latency, 1000 conns, memory per conn); the kernel path vs a real pod is in node-bench"
	go test -run '^$' -bench . -benchtime 1x ./portfwd/ | grep -E 'Benchmark|portfwd-bench'
fi
if want node; then
	section "issue 4: state store"
	go test -run '^$' -bench . -benchtime 1s ./internal/store/ | grep -E '^Benchmark'
	if [ -d hack/benchnode ]; then
		section "issue 4: node (create -> running, first HTTP, pod ls, daemon RSS)"
		go run ./hack/benchnode -bin "$BIN"
	fi
fi
if want hibernate; then
	section "issue 13: hibernate time and checkpoint size; wake -> first byte via host port vs bare runsc restore and cold create; memory returned by 20 hibernated pods; what a hibernated pod costs"
	go run ./hack/benchnode -bin "$BIN" -hibernate-only -n 10
fi
if want hibernated; then
	# Long (a pod created and hibernated per second or so): PINACLE_BENCH_HIBERNATED sets the
	# count, PINACLE_BENCH_HIBERNATED_BUDGET (a Go duration) bounds the time spent adding pods.
	section "issue 13: pods one node holds with all but 10 of ${PINACLE_BENCH_HIBERNATED:-1000} hibernated; disk, MemAvailable and tasks per hibernated pod beside a running one; the limiting resource"
	go run ./hack/benchnode -bin "$BIN" -hibernated "${PINACLE_BENCH_HIBERNATED:-1000}" -hibernated-budget "${PINACLE_BENCH_HIBERNATED_BUDGET:-0}"
fi
if want snapshot; then
	section "issue 14 part 2: template with a 5 s warm-up: create from its snapshot -> all healthy vs bare runsc restore of the same checkpoint and cold create; snapshot size"
	go run ./hack/benchnode -bin "$BIN" -snapshot-only -n 10
fi
if want warm; then
	section "issue 14: create -> first HTTP via host port claiming a warm sandbox vs bare runsc create+start of the same bundle (target <= 0.7x) and podman run -d + runsc (target <= 0.3x); memory and disk held by the pool"
	# Podman is the baseline only: Debian's, installed for this figure.
	command -v podman >/dev/null || apt-get install -y --no-install-recommends podman >/dev/null || echo "podman could not be installed; its baseline is skipped"
	go run ./hack/benchnode -bin "$BIN" -warm-only -n 10
	section "issue 14: memory per idle running busybox pod (memory cgroup and MemAvailable drop; target 15 MB), beside the same bundles run by bare runsc, with pinacle-init and with sleep (the floor)"
	go run ./hack/benchnode -bin "$BIN" -memory-only -n 10
fi
if want templates; then
	section "issue 6: decode + resolve"
	go test -run '^$' -bench . -benchmem ./templates/ | grep -E '^Benchmark'
fi
if want supervisor; then
	section "issue 5: sandbox start -> 3 trivial services healthy, beside the sandbox alone"
	go test -run '^$' -bench SandboxToReady -benchtime 10x ./supervisor/ | grep -E 'Benchmark|supervisor-bench|p50'
	section "issue 5: init's memory inside the sandbox (VmRSS as gVisor counts it; see docs/supervisor.md)"
	go test -run '^$' -bench InitRSS -benchtime 5x ./supervisor/ | grep -vE '^(goos|goarch|pkg|cpu|PASS|ok)'
	section "issue 5: web terminal keystroke echo and memory"
	go test -run '^$' -bench 'KeystrokeEcho' -benchtime 2000x ./webterm/ | grep -E '^Benchmark'
	section "issue 4/5: API round trips and exec overhead"
	go test -run '^$' -bench . -benchtime 2s ./internal/apiserver/ | grep -E '^Benchmark'
fi
if want gateway; then
	section "issue 16: authenticating gateway vs the same backend direct (64 B GET p50 added, 512 MiB throughput ratio, WebSocket echo p50, new conns/s); targets: added p50 <= 1 ms, ratio >= 0.8"
	go test -run '^$' -bench Gateway -benchtime 1x ./gateway/ | grep -E 'gateway-bench|FAIL'
	section "issue 16: the gateway vs the host port of the same real pod (web terminal /healthz and keystroke echo, 256 MiB from busybox httpd)"
	go run ./hack/benchnode -bin "$BIN" -gateway-only
fi
if [ "$status" -ne 0 ]; then
	echo "bench: failed at ${failed[*]}" >&2
fi
exit "$status"
