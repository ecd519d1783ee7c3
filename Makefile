# pinacle-node build, setup, test and bench entry points.
SHELL    := /bin/bash
GO        ?= go
BIN       ?= bin
GOARCHES  ?= amd64 arm64
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.Version=$(VERSION)
export CGO_ENABLED := 0

.PHONY: all build cross setup test unit e2e bench fuzz chaos load lint leakcheck clean k8s-build k8s-rig k8s-e2e

all: build

## build: bin/pinacle-node, bin/pinacle-init (pods' PID 1, which the node finds beside itself) and bin/pinacle-vk (the Kubernetes node, docs/kubernetes.md), static
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pinacle-node ./cmd/pinacle-node
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pinacle-init ./cmd/pinacle-init
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pinacle-vk ./cmd/pinacle-vk

## cross: bin/pinacle-{node,init,vk}-linux-{amd64,arm64} for the Lima VM
cross:
	for a in $(GOARCHES); do for c in node init vk; do GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pinacle-$$c-linux-$$a ./cmd/pinacle-$$c || exit 1; done; done

## setup: install runsc (static), CNI plugins, iptables, busybox, skopeo, umoci; idempotent
setup:
	bash hack/setup.sh

## test: the whole suite (unit with -race, then root e2e); the README's test command
test: unit e2e

## unit: every package's tests with the race detector (root tests run when root)
unit:
	set -o pipefail; CGO_ENABLED=1 $(GO) test -json -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e) | $(GO) run ./hack/testreport

## e2e: the real binary against real runsc, CNI and a loopback registry, then the leak check
e2e: build
	set -o pipefail; $(GO) test -json -count=1 -timeout 40m ./e2e/... | $(GO) run ./hack/testreport

## k8s-build: etcd and Kubernetes' control plane from the module proxy, once, into $(K8S_RIG_BIN) (minutes)
K8S_RIG_BIN ?= /var/lib/pinacle-k8s-rig/bin
k8s-build:
	BIN=$(K8S_RIG_BIN) bash hack/k8srig/build-k8s.sh

## k8s-rig: a control plane on 127.0.0.1 and three pinacle nodes through `pinacle-vk` (docs/kubernetes.md); ^C stops it
k8s-rig: build k8s-build
	$(GO) run ./hack/k8srig -bin $(K8S_RIG_BIN) -node-bin $(BIN)/pinacle-node -vk-bin $(BIN)/pinacle-vk

## k8s-e2e: the rig test (root, real runsc; needs k8s-build's binaries, not part of `make test`)
k8s-e2e: k8s-build
	set -o pipefail; PINACLE_K8S_RIG_BIN=$(K8S_RIG_BIN) $(GO) test -tags k8srig -json -count=1 -timeout 30m ./e2e/k8s/ | $(GO) run ./hack/testreport

## chaos: SIGKILL the daemon (and sandboxes) at random under concurrent clients, 200 rounds (CHAOS_ROUNDS); CI runs a short version in e2e
CHAOS_ROUNDS ?= 200
chaos: build
	PINACLE_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(GO) test -count=1 -timeout 180m -run '^TestChaos$$' -v ./e2e/

## load: 20 clients creating and deleting pods against 1, then idle pods until the machine's limits (docs/load.md; not in CI)
LOAD_FLAGS ?=
load: build
	$(GO) run ./hack/benchnode -bin $(BIN)/pinacle-node -load-only $(LOAD_FLAGS)

## bench: the figures each issue asks for
bench: build
	bash hack/bench.sh

## fuzz: a short run of every fuzz target
fuzz:
	bash hack/fuzz.sh

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...

clean:
	rm -rf $(BIN)

# ---- host CLI and Lima VM (issue 7) ----
HOSTPLATFORMS ?= darwin/arm64 darwin/amd64 linux/amd64 linux/arm64
VM            ?= pinacle

.PHONY: host cross-host vm-up vm-reload vm-test quickstart

## quickstart: set up this machine, start the node and bring up a pod from a template (TEMPLATE=nextjs NAME=quickstart)
quickstart:
	bash hack/quickstart.sh

## host: bin/pinacle, the host CLI for this machine (macOS or Linux)
host:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pinacle ./cmd/pinacle

## cross-host: bin/pinacle-<os>-<arch> for every platform in HOSTPLATFORMS
cross-host:
	for p in $(HOSTPLATFORMS); do GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pinacle-$${p%/*}-$${p#*/} ./cmd/pinacle || exit 1; done

## vm-up: cross-build the node, build the host CLI, then create (if needed) and start the Lima VM $(VM)
vm-up: cross host
	$(BIN)/pinacle vm up --vm $(VM) --template lima.yaml

## vm-reload: install a freshly cross-built node in the running VM and restart it (pods keep running)
vm-reload:
	limactl shell --workdir / $(VM) sudo sh -euc 'a=$$(dpkg --print-architecture); for c in node init; do install -m 0755 /opt/pinacle/src/bin/pinacle-$$c-linux-$$a /usr/local/bin/pinacle-$$c; done; systemctl restart pinacle-node'

## vm-test: the whole suite as root inside the VM, on a writable copy of the read-only repository mount
vm-test:
	limactl shell --workdir / $(VM) sudo bash -euc 'command -v go >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go make git; }; rm -rf /var/tmp/pinacle-src && cp -a /opt/pinacle/src /var/tmp/pinacle-src && cd /var/tmp/pinacle-src && GOTOOLCHAIN=auto make setup test'
