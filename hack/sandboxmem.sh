#!/usr/bin/env bash
# Where an idle sandbox's host memory goes (docs/runtime.md, "Memory per
# idle pod"): boots one bare runsc sandbox whose process is
# `pinacle-node init` with no services (as a pod's), or another program,
# and prints each host process's anonymous memory, the memory cgroup's
# usage and `runsc usage`. Run as root.
#
#   hack/sandboxmem.sh [-p "/bin/sleep 100000"] [-e ENV=V] [-- runsc flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
proc="/bin/pinacle-node init --config /cfg/services.json"
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
CGO_ENABLED=0 go build -o "$work/rootfs/bin/pinacle-node" ./cmd/pinacle-node
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
for p in $(cat "$cg/cgroup.procs"); do
	printf '%-14s anon %6s kB\n' "$(cut -d' ' -f1 < /proc/$p/cmdline | tr '\0' ' ' | cut -c1-14)" "$(awk '/^Anonymous/{print $2}' /proc/$p/smaps_rollup)"
done
awk '$1=="total_rss"||$1=="total_shmem"{printf "%s %.1f MB\n", $1, $2/1e6}' "$cg/memory.stat"
printf 'memory cgroup usage %.1f MB\n' "$(echo "$(cat "$cg/memory.usage_in_bytes")/1000000" | bc -l)"
runsc --root "$work/root" usage "$name" | tr -d '\n{}' ; echo
