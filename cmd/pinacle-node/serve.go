package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/apiserver"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/metrics"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/internal/pods"
	"github.com/pinacle/pinacle-node/internal/sdnotify"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/internal/storeadapt"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/portfwd"
	"github.com/pinacle/pinacle-node/portfwd/dnat"
	"github.com/pinacle/pinacle-node/rootfs"
	"github.com/pinacle/pinacle-node/templates"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the node daemon: manage pods and serve the API on a unix socket",
		Long: `Run the node daemon. It serves the API on a unix socket, adopts the
sandboxes that kept running while it was away, and finishes or undoes
operations a crash interrupted. On SIGTERM it stops serving and exits;
pods keep running and are adopted by the next start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadNodeConfig(cmd)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg)
		},
	}
	addConfigFlag(cmd)
	cmd.Flags().String("socket", envOr("PINACLE_SOCKET", "/run/pinacle/node.sock"), "API socket (env PINACLE_SOCKET)")
	return cmd
}

func serve(ctx context.Context, cfg *nodeconfig.Config) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("logLevel %q: %w", cfg.LogLevel, errdefs.ErrInvalidArgument)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if os.Geteuid() != 0 {
		return fmt.Errorf("serve needs root: %w", errdefs.ErrInvalidArgument)
	}
	// Sandboxes become our children when runsc create exits: reap them, and
	// learn their exit status (runsc wait cannot report it afterwards).
	if err := oci.BecomeSubreaper(); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				oci.Reap()
			}
		}
	}()
	for _, d := range []string{cfg.DataRoot, filepath.Dir(cfg.Socket), cfg.RunscRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	initBin, err := installInitBinary(cfg.DataRoot)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, filepath.Join(cfg.DataRoot, store.FileName), store.WithLogger(log))
	if err != nil {
		return err
	}
	defer st.Close()
	// Port and subnet allocations live in state.db; import what the old
	// JSON stores left, once, before anything reads allocations.
	if err := storeadapt.Migrate(ctx, st, cfg.DataRoot, storeadapt.WithLogger(log)); err != nil {
		return err
	}
	images, err := imagestore.New(ctx, cfg.DataRoot,
		imagestore.WithMirrors(cfg.Registry.Mirrors),
		imagestore.WithInsecureRegistries(cfg.Registry.InsecureRegistries...),
		imagestore.WithLogger(log))
	if err != nil {
		return err
	}
	rtOpts := []oci.Option{oci.WithRoot(cfg.RunscRoot), oci.WithPlatform(cfg.Platform), oci.WithLogger(log)}
	if cfg.RunscDebugDir != "" {
		rtOpts = append(rtOpts, oci.WithDebugLogDir(cfg.RunscDebugDir))
	}
	rt, err := oci.New(rtOpts...)
	if err != nil {
		return err
	}
	pool, _ := netip.ParsePrefix(cfg.Network.Pool)
	subnets, err := storeadapt.SubnetStore(st, pool, cfg.Network.SubnetBits)
	if err != nil {
		return err
	}
	nm, err := netns.New(netns.WithStateDir(filepath.Join(cfg.DataRoot, "netns")),
		netns.WithPool(pool, cfg.Network.SubnetBits), netns.WithSubnetStore(subnets), netns.WithLogger(log),
		netns.WithWarmPool(*cfg.Network.WarmPool))
	if err != nil {
		return err
	}
	listen, _ := netip.ParseAddr(cfg.Ports.ListenAddr)
	fwdOpts := []portfwd.Option{portfwd.WithStore(storeadapt.PortStore(st)), portfwd.WithListenAddr(listen),
		portfwd.WithPortRange(uint16(cfg.Ports.Min), uint16(cfg.Ports.Max)), portfwd.WithLogger(log)}
	// A connection to a hibernated pod's host port wakes it. The manager
	// is made after the forwarder it drives; no pod is hibernated in the
	// forwarder before Recover, which runs once mgr is set.
	var mgr *pods.Manager
	fwdOpts = append(fwdOpts, portfwd.WithWaker(func(ctx context.Context, id string) (netip.Addr, error) {
		return mgr.WakeForConnection(ctx, id)
	}))
	if k := kernelPath(ctx, cfg, listen, log); k != nil {
		fwdOpts = append(fwdOpts, portfwd.WithKernelPath(k))
	}
	fwd, err := portfwd.New(ctx, fwdOpts...)
	if err != nil {
		return err
	}
	tmpl, warnings, err := templates.Load(ctx, templates.WithDir(cfg.TemplatesDir), templates.WithLogger(log))
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn("user template skipped", "warning", w)
	}
	spares, err := rootfs.NewSpares(filepath.Join(cfg.DataRoot, "spares"))
	if err != nil {
		return err
	}
	mgr, err = pods.New(pods.Config{
		DataRoot: cfg.DataRoot, Store: st, Images: images, Runtime: rt, Net: nm, Ports: fwd,
		Templates: tmpl, InitBinary: initBin, Logger: log, URLHost: cfg.Ports.URLHost, GitBaseURL: cfg.Git.BaseURL,
		StorageSpares: spares, IdleTimeout: cfg.IdleTimeout.Duration,
	})
	if err != nil {
		spares.Close()
		return err
	}
	defer func() {
		mgr.Close()
		spares.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fwd.Close(cctx)
	}()
	if err := mgr.Recover(ctx); err != nil {
		return err
	}
	// Filled after recovery (which may tear networks down), drained when
	// ctx ends; the daemon waits for the drain before it exits.
	warmCtx, stopWarm := context.WithCancel(ctx)
	warmDone := make(chan struct{})
	go func() {
		defer close(warmDone)
		if err := nm.RunWarmPool(warmCtx); err != nil {
			log.Warn("warm network pool", "err", err)
		}
	}()
	defer func() { stopWarm(); <-warmDone }()
	if cfg.MetricsAddr != "" {
		go func() {
			if err := metrics.Serve(ctx, cfg.MetricsAddr, mgr); err != nil {
				log.Error("metrics endpoint", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
	}
	if mode, err := oci.HostTHP(); err == nil && mode != "always" {
		log.Info("host: transparent huge pages are not 'always'; with 'always' sandboxes start about 15% faster (docs/runtime.md, Host tuning)",
			"transparent_hugepage", mode)
	}
	ready := func() {
		log.Info("serving", "socket", cfg.Socket, "version", Version)
		if _, err := sdnotify.Notify("READY=1"); err != nil {
			log.Warn("sd_notify", "err", err)
		}
	}
	err = apiserver.Run(ctx, mgr, cfg.Socket, log, ready, apiserver.WithVersion(Version))
	_, _ = sdnotify.Notify("STOPPING=1")
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("stopped; pods keep running")
	return err
}

// kernelPath returns the forwarder's kernel fast path (iptables DNAT for
// running pods), or nil when the config turns it off or iptables cannot
// do it here: then every connection is relayed in userspace, which works
// everywhere.
func kernelPath(ctx context.Context, cfg *nodeconfig.Config, listen netip.Addr, log *slog.Logger) portfwd.KernelPath {
	if cfg.Ports.KernelForward != nil && !*cfg.Ports.KernelForward {
		log.Info("ports: kernel forwarding off (ports.kernelForward: false); relaying in userspace")
		return nil
	}
	if !listen.Unmap().Is4() {
		log.Warn("ports: kernel forwarding is IPv4 only; relaying in userspace", "listenAddr", listen)
		return nil
	}
	k, err := dnat.New(ctx, dnatOptions(cfg, listen, log)...)
	if err != nil {
		log.Warn("ports: kernel forwarding unavailable; relaying in userspace", "err", err)
		return nil
	}
	return k
}

// dnatOptions are shared by serve and cleanup: the owner (the data root)
// must match for cleanup to find the node's rules.
func dnatOptions(cfg *nodeconfig.Config, listen netip.Addr, log *slog.Logger) []dnat.Option {
	return []dnat.Option{dnat.WithOwner(cfg.DataRoot), dnat.WithListenAddr(listen),
		dnat.WithMaxConnsPerPort(portfwd.DefaultMaxConnsPerPort), dnat.WithLogger(log)}
}

// installInitBinary copies this (static) binary to the data root, where
// pods bind-mount it as their init. A new version goes in with a rename, so
// running pods keep the file they started with.
func installInitBinary(dataRoot string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if err := checkStatic(self); err != nil {
		return "", err
	}
	dst := filepath.Join(dataRoot, "bin", "pinacle-node")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if same, err := sameFile(self, dst); err != nil || same {
		return dst, err
	}
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp, dst)
}

// sameFile says whether b exists with a's contents: sizes first, then the
// bytes streamed, so a daemon start holds neither 20 MB binary in memory.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer fb.Close()
	sa, err1 := fa.Stat()
	sb, err2 := fb.Stat()
	if err1 != nil || err2 != nil || sa.Size() != sb.Size() {
		return false, nil
	}
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, _ := io.ReadFull(fb, bb[:na])
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil { // EOF or short final read: both ended together
			return true, nil
		}
	}
}

// checkStatic refuses a dynamically linked binary: inside a pod's rootfs
// there is no loader for it, and init would fail with a bare ENOENT.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("init binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("init binary %s is dynamically linked; build it with CGO_ENABLED=0 (make build): %w", path, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
