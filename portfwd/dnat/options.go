package dnat

import (
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"sync"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Defaults.
const (
	// DefaultChainPrefix names the node chains (PINACLE-PORTS,
	// PINACLE-PORTS-POST, PINACLE-PORTS-GUARD) and the per-pod ones
	// (PINACLE-PORTS-<hash>); the node's leak checks look for PINACLE.
	DefaultChainPrefix = "PINACLE-PORTS"
	// DefaultPodInterfaces matches the pods' host-side bridges as netns
	// names them by default ("pn" + hash).
	DefaultPodInterfaces = "pn+"
)

type config struct {
	prefix     string
	owner      string
	listenAddr netip.Addr
	podIfaces  string
	maxConns   int
	log        *slog.Logger
}

func defaults() config {
	return config{
		prefix:     DefaultChainPrefix,
		owner:      "default",
		listenAddr: netip.IPv4Unspecified(),
		podIfaces:  DefaultPodInterfaces,
		log:        slog.New(slog.DiscardHandler),
	}
}

// Option configures the kernel path. Options reject invalid values.
type Option func(*config) error

func invalid(format string, args ...any) error {
	return fmt.Errorf("dnat: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

var (
	// 28 characters is iptables' chain name limit; pod chains add 11.
	prefixRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Z][A-Z0-9-]{0,16}$`) })
	ifaceRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}\+?$`) })
)

// WithChainPrefix sets the chain name prefix (default PINACLE-PORTS; at
// most 17 characters, upper case). Nodes sharing a host share the node
// chains; each keeps to its own pod chains (WithOwner).
func WithChainPrefix(p string) Option {
	return func(c *config) error {
		if !prefixRE().MatchString(p) {
			return invalid("chain prefix %q: must match %s", p, prefixRE)
		}
		c.prefix = p
		return nil
	}
}

// WithOwner names this node among others on the same host (the serve
// command uses its data root). Prune and Cleanup touch only the owner's
// pods, and pod chains are named from owner and pod ID.
func WithOwner(owner string) Option {
	return func(c *config) error {
		if owner == "" {
			return invalid("owner must not be empty")
		}
		c.owner = owner
		return nil
	}
}

// WithListenAddr restricts the rules to one host address, as the
// forwarder's listen address does (default 0.0.0.0: every local address).
// A loopback or unspecified address makes connections from 127.0.0.0/8
// work too (route_localnet and masquerade on the pod's bridge).
func WithListenAddr(a netip.Addr) Option {
	return func(c *config) error {
		if !a.Is4() && !a.Is4In6() {
			return invalid("listen address %q: the kernel path is IPv4 only", a)
		}
		c.listenAddr = a.Unmap()
		return nil
	}
}

// WithPodInterfaces sets the iptables interface pattern of the pods'
// host-side interfaces (default "pn+"). Traffic arriving on them is never
// DNAT'd, so a pod cannot reach another pod through a host port (the
// userspace listener refuses it too: a pod may not reach the host).
func WithPodInterfaces(pattern string) Option {
	return func(c *config) error {
		if !ifaceRE().MatchString(pattern) {
			return invalid("pod interfaces %q: must match %s", pattern, ifaceRE)
		}
		c.podIfaces = pattern
		return nil
	}
}

// WithMaxConnsPerPort resets new connections beyond n open ones on a host
// port (connlimit), as portfwd.WithMaxConnsPerPort does in userspace;
// 0 (the default) sets no cap.
func WithMaxConnsPerPort(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return invalid("max conns per port %d must be >= 0", n)
		}
		c.maxConns = n
		return nil
	}
}

// WithLogger sets the logger (default: silent).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("logger must not be nil")
		}
		c.log = l
		return nil
	}
}
