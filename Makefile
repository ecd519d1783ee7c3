# pinacle-node build, setup, test and bench entry points.
SHELL    := /bin/bash
GO        ?= go
BIN       ?= bin
GOARCHES  ?= amd64 arm64
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.Version=$(VERSION)
export CGO_ENABLED := 0

.PHONY: all build cross setup test unit e2e bench fuzz lint leakcheck clean

all: build

## build: bin/pinacle-node, static
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pinacle-node ./cmd/pinacle-node

## cross: bin/pinacle-node-linux-{amd64,arm64} for the Lima VM
cross:
	for a in $(GOARCHES); do GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pinacle-node-linux-$$a ./cmd/pinacle-node || exit 1; done

## setup: install runsc (static), CNI plugins, iptables, busybox, skopeo, umoci; idempotent
setup:
	bash hack/setup.sh

## test: the whole suite (unit with -race, then root e2e); the README's test command
test: unit e2e

## unit: every package's tests with the race detector (root tests run when root)
unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e)

## e2e: the real binary against real runsc, CNI and a loopback registry, then the leak check
e2e: build
	$(GO) test -count=1 -timeout 40m ./e2e/...

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
