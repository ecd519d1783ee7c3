#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-scheduler and kube-controller-manager from
# the Go module proxy into $BIN (default /var/lib/pinacle-k8s-rig/bin), once:
# binaries that already exist at the pinned versions are kept. Kubernetes'
# root module points its staging modules at ./staging, which a module
# download does not carry, so a scratch module replaces each of them with
# the published k8s.io/<name> v0.<minor>.<patch>.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
RIG_DIR=${RIG_DIR:-/var/lib/pinacle-k8s-rig}
BIN=${BIN:-$RIG_DIR/bin}
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

mkdir -p "$BIN"
stamp="$BIN/VERSIONS"
want="kubernetes=$K8S_VERSION etcd=$ETCD_VERSION"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] &&
	[[ -x $BIN/etcd && -x $BIN/kube-apiserver && -x $BIN/kube-scheduler && -x $BIN/kube-controller-manager ]]; then
	echo "k8s-rig: binaries cached in $BIN ($want)"
	exit 0
fi
rm -f "$stamp"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
if [[ ! -x $BIN/etcd ]]; then
	echo "k8s-rig: building etcd $ETCD_VERSION"
	# etcd's server module carries replace lines, so `go install mod@v` refuses
	# it; a scratch module that requires it builds the same main package.
	mkdir -p "$RIG_DIR/build-etcd"
	(
		cd "$RIG_DIR/build-etcd"
		printf 'module pinacle.dev/etcdbuild\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >go.mod
		printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
		go mod tidy >/dev/null 2>&1 || go mod tidy
		go build -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
	)
	mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

work="$RIG_DIR/build"
mkdir -p "$work"
cd "$work"
echo "k8s-rig: building Kubernetes $K8S_VERSION (staging modules at $STAGING_VERSION); minutes on a small machine"
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
goline=$(grep -m1 '^go ' "$modfile")
{
	echo "module pinacle.dev/k8srigbuild"
	echo
	echo "$goline"
	echo
	echo "require k8s.io/kubernetes $K8S_VERSION"
	echo
	echo "replace ("
	sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$STAGING_VERSION"'#p' "$modfile"
	echo ")"
} >go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
go mod tidy -e >/dev/null 2>&1 || true
for c in kube-apiserver kube-scheduler kube-controller-manager; do
	if [[ ! -x $BIN/$c ]]; then
		echo "k8s-rig: building $c"
		go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_VERSION#v1.}" -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
		mv "$BIN/$c.tmp" "$BIN/$c"
	fi
done
echo "$want" >"$stamp"
echo "k8s-rig: binaries in $BIN"
