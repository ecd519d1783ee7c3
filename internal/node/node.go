package node

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/pinacle/pinacle-node/gateway"
	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/internal/pods"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/portfwd"
	"github.com/pinacle/pinacle-node/rootfs"
	"github.com/pinacle/pinacle-node/snapshots"
)

// forwarderCloseTimeout bounds how long Close waits for the forwarder to
// stop its listeners and relays.
const forwarderCloseTimeout = 5 * time.Second

// Node is a daemon's parts, built from one configuration. Pods is what the
// API serves; the others are exposed for the daemon's own loops (the warm
// network pool) and for tests.
type Node struct {
	Config  *nodeconfig.Config
	Log     *slog.Logger
	State   *store.Store
	Images  imagestore.Store
	Runtime oci.Runtime
	Net     netns.Manager
	Ports   portfwd.Forwarder
	Spares  *rootfs.Spares
	Pods    *pods.Manager
	// Gateway is the authenticating HTTP gateway; nil when node.yaml
	// turns it off. Serve it on ListenGateway's listener.
	Gateway *gateway.Gateway

	closers []func() // run last to first by Close
}

// New builds every part of a node from cfg, in dependency order: data
// directories, the init binary pods bind-mount, the state store (with its
// one-time import of the old JSON stores), images, runtime, network,
// port forwarder, templates, storage spares and the pods manager. It
// touches no pod: call Pods.Recover next. On failure what was built is
// closed again.
func New(ctx context.Context, cfg *nodeconfig.Config, log *slog.Logger) (_ *Node, err error) {
	n := &Node{Config: cfg, Log: log}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	for _, d := range []string{cfg.DataRoot, cfg.RunscRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	initBin, podInit, err := InstallInitBinary(cfg.DataRoot)
	if err != nil {
		return nil, err
	}
	if n.State, err = OpenState(ctx, cfg, log); err != nil {
		return nil, err
	}
	n.onClose(func() { n.State.Close() })
	if n.Images, err = openImages(ctx, cfg, log); err != nil {
		return nil, err
	}
	if n.Runtime, err = Runtime(cfg, oci.WithLogger(log)); err != nil {
		return nil, err
	}
	if n.Net, err = openNetwork(cfg, n.State, log); err != nil {
		return nil, err
	}
	// A connection to a hibernated pod's host port wakes it. The pods
	// manager is built after the forwarder it drives; no pod is
	// hibernated in the forwarder before Pods.Recover, so n.Pods is set
	// by the time the waker runs.
	waker := portfwd.WithWaker(func(ctx context.Context, id string) (netip.Addr, error) {
		return n.Pods.WakeForConnection(ctx, id)
	})
	if n.Ports, err = Forwarder(ctx, cfg, n.State, log, waker); err != nil {
		return nil, err
	}
	n.onClose(func() {
		cctx, cancel := context.WithTimeout(context.Background(), forwarderCloseTimeout)
		defer cancel()
		if err := n.Ports.Close(cctx); err != nil {
			log.Warn("port forwarder close", "err", err)
		}
	})
	tmpl, err := Templates(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if n.Spares, err = rootfs.NewSpares(filepath.Join(cfg.DataRoot, "spares")); err != nil {
		return nil, err
	}
	n.onClose(n.Spares.Close)
	if n.Gateway, err = Gateway(cfg, n.podBackends(), log); err != nil {
		return nil, err
	}
	pcfg := pods.Config{
		DataRoot: cfg.DataRoot, Store: n.State, Images: n.Images, Runtime: n.Runtime, Net: n.Net, Ports: n.Ports,
		Templates: tmpl, InitBinary: initBin, PodInit: podInit, Logger: log, URLHost: cfg.Ports.URLHost, GitBaseURL: cfg.Git.BaseURL,
		StorageSpares: n.Spares, IdleTimeout: cfg.IdleTimeout.Duration, SubnetBits: cfg.Network.SubnetBits,
		Warm: warmConfig(cfg), CgroupParent: cfg.CgroupParent,
	}
	if pcfg.Snapshots, pcfg.AutoSnapshot, err = Snapshots(cfg); err != nil {
		return nil, err
	}
	if n.Gateway != nil { // a nil *Gateway in the interface would not read as "off"
		pcfg.Gateway = n.Gateway
	}
	if n.Pods, err = pods.New(pcfg); err != nil {
		return nil, err
	}
	n.onClose(n.Pods.Close)
	return n, nil
}

func (n *Node) onClose(f func()) { n.closers = append(n.closers, f) }

// Close stops the node's parts, last built first. Pods and their sandboxes
// keep running: the next New adopts them.
func (n *Node) Close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
	n.closers = nil
}

// StartWarmPool fills the warm network pool in the background (call it
// after Pods.Recover, which may tear networks down) and returns a function
// that drains it and waits for the drain: call that before Close. It
// first resumes the DNS filters (egress domains) of the pods that Recover
// adopted: they live in the daemon's process.
func (n *Node) StartWarmPool(ctx context.Context) (stop func()) {
	if err := n.Net.ResumeDNSFilters(ctx); err != nil {
		n.Log.Warn("resume dns filters", "err", err)
	}
	warmCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Net.RunWarmPool(warmCtx); err != nil {
			n.Log.Warn("warm network pool", "err", err)
		}
	}()
	// The warm sandbox pool (docs/warmpool.md) drains before the networks.
	sandboxes := make(chan struct{})
	go func() {
		defer close(sandboxes)
		n.Pods.RunWarm(warmCtx)
	}()
	return func() { cancel(); <-sandboxes; <-done }
}

// Snapshots opens the template snapshot store node.yaml asks for (nil
// when snapshots are off) and says whether to take them automatically.
func Snapshots(cfg *nodeconfig.Config) (*snapshots.Store, bool, error) {
	if e := cfg.Snapshots.Enabled; e != nil && !*e {
		return nil, false, nil
	}
	var maxBytes int64
	if mb := cfg.Snapshots.MaxMB; mb != nil {
		maxBytes = *mb << 20
	}
	st, err := snapshots.Open(filepath.Join(cfg.DataRoot, "snapshots"), maxBytes)
	return st, cfg.Snapshots.Auto, err
}

// openImages is OpenImages after clearing the temporary files that a
// SIGKILL in the middle of writing a pod's image lease leaves (chaos found
// them); the image store never lists them, so nothing else removes them.
func openImages(ctx context.Context, cfg *nodeconfig.Config, log *slog.Logger) (imagestore.Store, error) {
	if err := fileutil.RemoveStaleTemps(imagestore.LeaseDir(filepath.Clean(cfg.DataRoot))); err != nil {
		return nil, err
	}
	return OpenImages(ctx, cfg, imagestore.WithLogger(log))
}

// openNetwork is Network after clearing the temporary files that a
// SIGKILL in the middle of writing a network record leaves (the warm
// pool refills in the background); nothing else would ever remove them.
func openNetwork(cfg *nodeconfig.Config, st *store.Store, log *slog.Logger) (netns.Manager, error) {
	if err := fileutil.RemoveStaleTemps(filepath.Join(netnsDir(cfg), "pods")); err != nil {
		return nil, err
	}
	return Network(cfg, st, log)
}
