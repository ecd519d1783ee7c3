#!/usr/bin/env bash
# Where an idle sandbox's host memory goes (docs/runtime.md, "Memory per
# idle pod"): boots one bare runsc sandbox whose process is
# `pinacle-init` with no services (as a pod's), or another program
# (`-p "/bin/sleep 100000"`: gVisor's floor), and prints each host
# process of its memory cgroup (role, threads, RssAnon / RssFile /
# RssShmem and page tables from /proc/PID/status: the sentry's memory is
# its memory file, shared memory, which smaps' Anonymous does not show),
# the cgroup's memory.stat split and kernel memory, its usage, and
# `runsc usage`. Run as root. `make bench` measures pods through the node
# instead (hack/benchnode -memory-only).
#
#   hack/sandboxmem.sh [-p "/bin/sleep 100000"] [-e ENV=V] [-- runsc flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
proc="/bin/pinacle-init --config /cfg/services.json"
envs=()
while [ $# -gt 0 ]; do
	case "$1" in
	-p) proc="$2"; shift 2 ;;
	-e) envs+=("$2"); shift 2 ;;
	--) shift; break ;;
	*) echo "usage: $0 [-p CMD] [-e K=V] [-- runsc flags]" >&2; exit 2 ;;
	esac
done
work=$(mktemp -d /tmp/pinacle-sandboxmem-XXXXXX)
name=sbmem-$$
cg=/sys/fs/cgroup/memory/pinacle-sandboxmem/$name
cleanup() {
	runsc --root "$work/root" delete --force "$name" >/dev/null 2>&1 || true
	umount "$work/root/null-netns" 2>/dev/null || true
	# runsc removes the container's cgroup, never the parent it made.
	for d in /sys/fs/cgroup/*/pinacle-sandboxmem; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work"/rootfs/{bin,cfg,run,tmp,proc,sys,dev,etc} "$work/b"
cp "$(command -v busybox)" "$work/rootfs/bin/"
ln -s busybox "$work/rootfs/bin/sh"; ln -s busybox "$work/rootfs/bin/sleep"
CGO_ENABLED=0 go build -o "$work/rootfs/bin/pinacle-init" ./cmd/pinacle-init
echo '{"services":[],"statusFile":"/run/status.json","logDir":"/run/logs"}' > "$work/rootfs/cfg/services.json"
(cd "$work/b" && runsc spec)
python3 - "$work" "$name" "$proc" "${envs[@]}" <<'PY'
import json, sys
work, name, proc, envs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
c = json.load(open(work + "/b/config.json"))
c["process"]["args"] = proc.split()
c["process"]["terminal"] = False
c["process"]["env"] += envs
c["root"] = {"path": work + "/rootfs", "readonly": False}
c["linux"]["cgroupsPath"] = "/pinacle-sandboxmem/" + name
json.dump(c, open(work + "/b/config.json", "w"))
PY
runsc --root "$work/root" --network=none --platform=systrap --overlay2=none "$@" run --detach --bundle "$work/b" "$name" > "$work/log" 2>&1
sleep 6
# runsc names its processes in argv[0] (runsc-sandbox, runsc-gofer); the
# rest of the cgroup is the systrap stubs, which hold the application's
# address spaces (their comm is that of the first program run there).
printf '%-8s %6s %7s %9s %9s %9s %8s\n' role pid threads RssAnon RssFile RssShmem VmPTE
for p in $(cat "$cg/cgroup.procs"); do
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
echo "(RssShmem is the sandbox's memory file as each process maps it: the sentry and its stubs map the same pages, which the cgroup counts once)"
awk '$1=="total_rss"||$1=="total_cache"||$1=="total_shmem"||$1=="total_mapped_file"{printf "memory.stat %s %.1f MB\n", $1, $2/1e6}' "$cg/memory.stat"
printf 'kernel memory (page tables, stacks, slab) %.1f MB\n' "$(echo "$(cat "$cg/memory.kmem.usage_in_bytes")/1000000" | bc -l)"
printf 'memory cgroup usage %.1f MB\n' "$(echo "$(cat "$cg/memory.usage_in_bytes")/1000000" | bc -l)"
runsc --root "$work/root" usage "$name" | tr -d '\n{}' ; echo
