package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/internal/storeadapt"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/portfwd"
	"github.com/pinacle/pinacle-node/portfwd/dnat"
	"github.com/pinacle/pinacle-node/templates"
)

// Logger returns the daemon's logger: JSON on stderr (journald picks it
// up) at cfg.LogLevel.
func Logger(cfg *nodeconfig.Config) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("logLevel %q: %w", cfg.LogLevel, errdefs.ErrInvalidArgument)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// OpenState opens state.db under the data root and imports, once, what
// the old JSON allocation stores left, before anything reads allocations.
func OpenState(ctx context.Context, cfg *nodeconfig.Config, log *slog.Logger) (*store.Store, error) {
	st, err := store.Open(ctx, filepath.Join(cfg.DataRoot, store.FileName), store.WithLogger(log))
	if err != nil {
		return nil, err
	}
	if err := storeadapt.Migrate(ctx, st, cfg.DataRoot, storeadapt.WithLogger(log)); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// OpenImages opens the image store under the data root with the registry
// settings of cfg (mirrors, insecure registries); opts come after them, so
// a caller can add to or override them.
func OpenImages(ctx context.Context, cfg *nodeconfig.Config, opts ...imagestore.Option) (imagestore.Store, error) {
	base := []imagestore.Option{
		imagestore.WithMirrors(cfg.Registry.Mirrors),
		imagestore.WithInsecureRegistries(cfg.Registry.InsecureRegistries...),
	}
	return imagestore.New(ctx, filepath.Clean(cfg.DataRoot), append(base, opts...)...)
}

// Runtime returns the runsc runtime with cfg's state root, platform and
// debug log directory; opts come after them.
func Runtime(cfg *nodeconfig.Config, opts ...oci.Option) (oci.Runtime, error) {
	base := []oci.Option{oci.WithRoot(cfg.RunscRoot), oci.WithPlatform(cfg.Platform)}
	if cfg.RunscDebugDir != "" {
		base = append(base, oci.WithDebugLogDir(cfg.RunscDebugDir))
	}
	return oci.New(append(base, opts...)...)
}

// Network returns the netns manager over cfg's subnet pool, keeping its
// subnet reservations in st, with cfg's warm pool size (the pool is not
// filled until RunWarmPool).
func Network(cfg *nodeconfig.Config, st *store.Store, log *slog.Logger) (netns.Manager, error) {
	pool, err := netip.ParsePrefix(cfg.Network.Pool)
	if err != nil { // Validate has checked it; a hand-built Config may not have been
		return nil, fmt.Errorf("network.pool %q: %w", cfg.Network.Pool, errdefs.ErrInvalidArgument)
	}
	subnets, err := storeadapt.SubnetStore(st, pool, cfg.Network.SubnetBits)
	if err != nil {
		return nil, err
	}
	return netns.New(netns.WithStateDir(netnsDir(cfg)),
		netns.WithPool(pool, cfg.Network.SubnetBits), netns.WithSubnetStore(subnets), netns.WithLogger(log),
		netns.WithWarmPool(*cfg.Network.WarmPool))
}

func netnsDir(cfg *nodeconfig.Config) string { return filepath.Join(cfg.DataRoot, "netns") }

// Forwarder returns the port forwarder over cfg's host port pool, keeping
// its allocations in st, with the kernel fast path unless cfg turns it off
// or this host cannot do it; extra options (a waker) come last.
func Forwarder(ctx context.Context, cfg *nodeconfig.Config, st *store.Store, log *slog.Logger, extra ...portfwd.Option) (portfwd.Forwarder, error) {
	listen, err := netip.ParseAddr(cfg.Ports.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("ports.listenAddr %q: %w", cfg.Ports.ListenAddr, errdefs.ErrInvalidArgument)
	}
	public, err := netip.ParseAddr(cfg.Ports.PublicListenAddr)
	if err != nil {
		return nil, fmt.Errorf("ports.publicListenAddr %q: %w", cfg.Ports.PublicListenAddr, errdefs.ErrInvalidArgument)
	}
	opts := []portfwd.Option{portfwd.WithStore(storeadapt.PortStore(st)), portfwd.WithListenAddr(listen), portfwd.WithPublicListenAddr(public),
		portfwd.WithPortRange(uint16(cfg.Ports.Min), uint16(cfg.Ports.Max)), portfwd.WithLogger(log)}
	if k := kernelPath(ctx, cfg, listen, log); k != nil {
		opts = append(opts, portfwd.WithKernelPath(k))
	}
	return portfwd.New(ctx, append(opts, extra...)...)
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

// dnatOptions are shared by the forwarder and Cleanup: the owner (the data
// root) must match for Cleanup to find the node's rules.
func dnatOptions(cfg *nodeconfig.Config, listen netip.Addr, log *slog.Logger) []dnat.Option {
	return []dnat.Option{dnat.WithOwner(cfg.DataRoot), dnat.WithListenAddr(listen),
		dnat.WithMaxConnsPerPort(portfwd.DefaultMaxConnsPerPort), dnat.WithLogger(log)}
}

// Templates loads the embedded templates and the user's from
// cfg.TemplatesDir; a user template that does not load is logged and
// skipped, as the daemon must start without it.
func Templates(ctx context.Context, cfg *nodeconfig.Config, log *slog.Logger) (*templates.Registry, error) {
	tmpl, warnings, err := templates.Load(ctx, templates.WithDir(cfg.TemplatesDir), templates.WithLogger(log))
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn("user template skipped", "warning", w)
	}
	return tmpl, nil
}
