#!/usr/bin/env bash
# make quickstart: from a fresh Linux machine (root) to a running pod.
# Installs what is missing, starts the node (systemd when it runs, else in
# the background), and creates a pod from a template, printing its URLs.
# Online it uses the template's real image; when no registry answers it
# builds a busybox image from this machine and uses the offline template.
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPLATE="${TEMPLATE:-nextjs}"
NAME="${NAME:-quickstart}"
SOCKET="${PINACLE_SOCKET:-/run/pinacle/node.sock}"
export PINACLE_SOCKET="$SOCKET"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (sudo make quickstart)" >&2; exit 1; }

step "Installing what the node needs (runsc, CNI plugins, iptables, ...)"
make -s setup

step "Building pinacle-node and pinacle-init"
make -s build
install -m 0755 bin/pinacle-node /usr/local/bin/pinacle-node
install -m 0755 bin/pinacle-init /usr/local/bin/pinacle-init # pods' PID 1: the node looks beside itself
mkdir -p /etc/pinacle
[ -f /etc/pinacle/node.yaml ] || install -m 0644 deploy/node.yaml /etc/pinacle/node.yaml

step "Starting the node"
if pinacle-node pod ls >/dev/null 2>&1; then
	echo "already running on $SOCKET"
elif [ -d /run/systemd/system ]; then
	install -m 0644 deploy/pinacle-node.service /etc/systemd/system/pinacle-node.service
	install -m 0644 deploy/pinacle-node-drain.service /etc/systemd/system/pinacle-node-drain.service
	systemctl daemon-reload
	systemctl enable --now pinacle-node
	systemctl enable --now pinacle-node-drain
else
	echo "no systemd here: running 'pinacle-node serve' in the background (log: /var/log/pinacle-node.log)"
	setsid nohup /usr/local/bin/pinacle-node serve --config /etc/pinacle/node.yaml >>/var/log/pinacle-node.log 2>&1 </dev/null &
fi
for _ in $(seq 1 150); do
	pinacle-node pod ls >/dev/null 2>&1 && break
	sleep 0.2
done
pinacle-node pod ls >/dev/null || { echo "the node did not come up; see /var/log/pinacle-node.log or journalctl -u pinacle-node" >&2; exit 1; }

if pinacle-node pod get "$NAME" >/dev/null 2>&1; then
	step "Pod $NAME exists already"
	pinacle-node pod get "$NAME"
	echo; echo "A link to it through the gateway:"; pinacle-node pod url "$NAME"
	exit 0
fi

step "Getting the image of template $TEMPLATE"
image="$(pinacle-node template show "$TEMPLATE" -o json | sed -n 's/.*"baseImage": *"\([^"]*\)".*/\1/p' | head -1)"
if pinacle-node image pull "$image"; then
	:
else
	echo "no registry answered for $image: building an offline busybox image from this machine"
	layout="$(mktemp -d)"
	trap 'rm -rf "$layout"' EXIT
	go run ./hack/mkimage -o "$layout" >/dev/null
	pinacle-node image import "$layout"
	TEMPLATE=minimal
fi

step "Creating pod $NAME from template $TEMPLATE"
pinacle-node pod create --template "$TEMPLATE" --name "$NAME"
echo
echo "Its ports are reached through the node's gateway, which needs a signed link (docs/security.md):"
pinacle-node pod url "$NAME"
echo "(pinacle-node pod url $NAME PORT for another port; --revoke to invalidate every link)"
echo
echo "Try: pinacle-node pod exec -it $NAME -- sh      pinacle-node pod logs $NAME SERVICE --follow"
