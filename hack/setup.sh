#!/usr/bin/env bash
# Installs what pinacle-node and its tests need on a Debian host, as root.
# Idempotent: each step checks before it installs.
set -euo pipefail

RUNSC_VERSION="${RUNSC_VERSION:-v0.0.0-20260905035102-160fafc42237}"
CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.10.0}"
CNI_BIN_DIR="${CNI_BIN_DIR:-/opt/cni/bin}"
BIN_DIR="${BIN_DIR:-/usr/local/bin}"
export GOFLAGS="${GOFLAGS:-} -mod=mod"

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	echo "setup: must run as root" >&2
	exit 1
fi

# Debian packages. chromium (headless) and a font run the browser tests
# (e2e/browser_test.go), which fail under CI=true without it.
pkgs=(iptables iproute2 busybox-static skopeo umoci e2fsprogs util-linux kmod curl git chromium fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "apt-get install ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The go.mod-free module builds need GOBIN; install into a private dir then copy.
gobin="$(mktemp -d)"
trap 'rm -rf "$gobin"' EXIT

# runsc must be static: a cgo build fails at sandbox start.
want_runsc="runsc@${RUNSC_VERSION}"
if [ ! -x "$BIN_DIR/runsc" ] || [ "$(cat "$BIN_DIR/.runsc-version" 2>/dev/null)" != "$want_runsc" ]; then
	log "building $want_runsc (static)"
	(cd / && CGO_ENABLED=0 GOBIN="$gobin" GOFLAGS= go install "gvisor.dev/gvisor/runsc@${RUNSC_VERSION}")
	install -m 0755 "$gobin/runsc" "$BIN_DIR/runsc"
	echo "$want_runsc" > "$BIN_DIR/.runsc-version"
fi

# CNI plugins.
plugins=(main/bridge main/loopback ipam/host-local meta/bandwidth meta/firewall meta/portmap meta/tuning)
mkdir -p "$CNI_BIN_DIR"
need_cni=0
for p in "${plugins[@]}"; do
	[ -x "$CNI_BIN_DIR/$(basename "$p")" ] || need_cni=1
done
if [ "$(cat "$CNI_BIN_DIR/.version" 2>/dev/null)" != "$CNI_PLUGINS_VERSION" ]; then need_cni=1; fi
if [ "$need_cni" = 1 ]; then
	log "building CNI plugins $CNI_PLUGINS_VERSION"
	args=()
	for p in "${plugins[@]}"; do args+=("github.com/containernetworking/plugins/plugins/$p@${CNI_PLUGINS_VERSION}"); done
	(cd / && CGO_ENABLED=0 GOBIN="$gobin" GOFLAGS= go install "${args[@]}")
	for p in "${plugins[@]}"; do install -m 0755 "$gobin/$(basename "$p")" "$CNI_BIN_DIR/"; done
	echo "$CNI_PLUGINS_VERSION" > "$CNI_BIN_DIR/.version"
fi

# Kernel modules the node uses (best effort: some are built in).
for m in overlay loop br_netfilter veth sch_tbf ifb; do modprobe "$m" 2>/dev/null || true; done
# The node routes pod traffic, and the DNAT tests need it: a failure here is a failure.
sysctl -qw net.ipv4.ip_forward=1
# The node's host port pool must not be handed out as ephemeral source ports.
sysctl -qw net.ipv4.ip_local_reserved_ports=30000-40000 || true

log "ok: runsc $(runsc --version 2>/dev/null | head -1)"
