#!/usr/bin/env bash
# Where an idle sandbox's host memory goes (docs/runtime.md, "Memory per
# idle pod"): boots n bare runsc sandboxes (the node's flags, its own
# netns with loopback only unless --network=none is given) whose process
# is `pinacle-init` with no services (as a pod's), or another program
# (`-p "/bin/sleep 100000"`: gVisor's floor), and prints, for the first,
# each host process of its memory cgroup (role, threads, RssAnon /
# RssFile / RssShmem and page tables from /proc/PID/status: the sentry's
# application memory is its memory file, shared memory, which smaps'
# Anonymous does not show), and over all n the mean memory cgroup usage,
# memory.stat split and kernel memory. Names carry no "pinacle", so the
# e2e leak checks running meanwhile do not see them. Run as root.
# `make bench` measures pods through the node (hack/benchnode -memory-only).
#
#   hack/sandboxmem.sh [-n 5] [-p "/bin/sleep 100000"] [-i INIT_BINARY] [-e ENV=V] [-- runsc flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
proc="/bin/pinacle-init --config /cfg/services.json"
envs=()
n=1
initbin=""
while [ $# -gt 0 ]; do
	case "$1" in
	-n) n="$2"; shift 2 ;;
	-p) proc="$2"; shift 2 ;;
	-i) initbin="$2"; shift 2 ;;
	-e) envs+=("$2"); shift 2 ;;
	--) shift; break ;;
	*) echo "usage: $0 [-n N] [-p CMD] [-i INIT_BINARY] [-e K=V] [-- runsc flags]" >&2; exit 2 ;;
	esac
done
work=$(mktemp -d /tmp/sbmem-XXXXXX)
parent=sbmem-$$
cgp=/sys/fs/cgroup/memory/$parent
cleanup() {
	for i in $(seq 1 "$n"); do
		runsc --root "$work/root" delete --force "sb$i" >/dev/null 2>&1 || true
	done
	umount "$work/root/null-netns" 2>/dev/null || true
	# runsc removes the container's cgroup, never the parent it made.
	for d in /sys/fs/cgroup/*/"$parent"; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work"/rootfs/{bin,cfg,run,tmp,proc,sys,dev,etc} "$work/b"
cp "$(command -v busybox)" "$work/rootfs/bin/"
ln -s busybox "$work/rootfs/bin/sh"; ln -s busybox "$work/rootfs/bin/sleep"
if [ -n "$initbin" ]; then
	cp "$initbin" "$work/rootfs/bin/pinacle-init"
else
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/rootfs/bin/pinacle-init" ./cmd/pinacle-init
fi
echo '{"services":[],"statusFile":"/run/status.json","logDir":"/run/logs"}' > "$work/rootfs/cfg/services.json"
(cd "$work/b" && runsc spec)
for i in $(seq 1 "$n"); do
	mkdir -p "$work/b$i"
	python3 - "$work" "$parent/sb$i" "$i" "$proc" "${envs[@]}" <<'PY'
import json, sys
work, cg, i, proc, envs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
c = json.load(open(work + "/b/config.json"))
c["process"]["args"] = proc.split()
c["process"]["terminal"] = False
c["process"]["env"] += envs
c["root"] = {"path": work + "/rootfs", "readonly": False}
c["linux"]["cgroupsPath"] = "/" + cg
json.dump(c, open(work + "/b" + i + "/config.json", "w"))
PY
	if ! runsc --root "$work/root" --network=sandbox --platform=systrap --overlay2=none "$@" run --detach --bundle "$work/b$i" "sb$i" > "$work/log$i" 2>&1; then
		echo "runsc run sb$i failed:" >&2; cat "$work/log$i" >&2; exit 1
	fi
done
sleep 10
# runsc names its processes in argv[0] (runsc-sandbox, runsc-gofer); the
# rest of the cgroup is the systrap stubs, which hold the application's
# address spaces.
echo "first sandbox, by process:"
printf '%-8s %6s %7s %9s %9s %9s %8s\n' role pid threads RssAnon RssFile RssShmem VmPTE
for p in $(cat "$cgp/sb1/cgroup.procs"); do
	a0=$(tr '\0' '\n' < "/proc/$p/cmdline" | head -n1)
	case "$a0" in
	*runsc-sandbox*) role=sentry ;;
	*runsc-gofer*) role=gofer ;;
	*) role=stub ;;
	esac
	awk -v role="$role" -v pid="$p" '
		$1=="Threads:"{t=$2} $1=="RssAnon:"{a=$2} $1=="RssFile:"{f=$2} $1=="RssShmem:"{s=$2} $1=="VmPTE:"{pt=$2}
		END{printf "%-8s %6s %7s %6s kB %6s kB %6s kB %5s kB\n", role, pid, t, a, f, s, pt}' "/proc/$p/status"
done
echo "(RssShmem is the sandbox's memory file as each process maps it; the cgroup counts shared pages once)"
runsc --root "$work/root" usage sb1 | tr -d '\n{}' ; echo
echo "mean of $n sandboxes (MB):"
for i in $(seq 1 "$n"); do
	awk -v u="$(cat "$cgp/sb$i/memory.usage_in_bytes")" -v k="$(cat "$cgp/sb$i/memory.kmem.usage_in_bytes")" '
		$1=="total_rss"{r=$2} $1=="total_cache"{c=$2} $1=="total_shmem"{s=$2} $1=="total_mapped_file"{m=$2}
		END{print u, r, s, c-s, m, k}' "$cgp/sb$i/memory.stat"
done | awk '{for(j=1;j<=6;j++) t[j]+=$j} END{
	printf "memory cgroup usage %.1f: rss (anonymous: the sentry and gofer Go runtimes) %.1f, shmem (the memory file) %.1f, other page cache %.1f (mapped %.1f), kernel memory (page tables, stacks, slab) %.1f\n",
		t[1]/NR/1e6, t[2]/NR/1e6, t[3]/NR/1e6, t[4]/NR/1e6, t[5]/NR/1e6, t[6]/NR/1e6}'
