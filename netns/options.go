package netns

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"sync"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Option configures a Manager.
type Option func(*config) error

type config struct {
	stateDir     string
	netnsDir     string
	pluginDirs   []string
	pool         netip.Prefix
	subnetBits   int
	store        SubnetStore
	bridgePrefix string
	chainPrefix  string
	netnsPrefix  string
	hostDNS      func() (DNS, error)
	log          *slog.Logger
	warmSize     int
}

func defaults() config {
	return config{
		stateDir:     "/var/lib/pinacle/netns",
		netnsDir:     "/run/netns",
		pluginDirs:   []string{"/opt/cni/bin"},
		pool:         netip.MustParsePrefix("10.88.0.0/16"),
		subnetBits:   28,
		bridgePrefix: "pn",
		chainPrefix:  "PINACLE",
		netnsPrefix:  "pinacle-",
		hostDNS:      HostDNS,
		log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func invalid(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
}

// WithStateDir sets where records, subnet reservations, IPAM leases and the
// CNI cache live (default /var/lib/pinacle/netns, i.e. under the data root).
func WithStateDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return invalid("state dir: must not be empty")
		}
		c.stateDir = dir
		return nil
	}
}

// WithNetnsDir sets where named namespaces are mounted (default /run/netns,
// shared with `ip netns`).
func WithNetnsDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return invalid("netns dir: must not be empty")
		}
		c.netnsDir = dir
		return nil
	}
}

// WithPluginDirs sets where CNI plugin binaries are (default /opt/cni/bin).
func WithPluginDirs(dirs ...string) Option {
	return func(c *config) error {
		if len(dirs) == 0 {
			return invalid("plugin dirs: need at least one")
		}
		c.pluginDirs = dirs
		return nil
	}
}

// WithPool sets the pool pod subnets are carved from (default 10.88.0.0/16)
// and their size (default /28).
func WithPool(pool netip.Prefix, bits int) Option {
	return func(c *config) error {
		if !pool.IsValid() || !pool.Addr().Is4() || pool != pool.Masked() {
			return invalid("pool %s: must be an IPv4 network address", pool)
		}
		if bits < pool.Bits() || bits > 30 {
			return invalid("pod subnet size /%d: must be within the pool's /%d and /30", bits, pool.Bits())
		}
		c.pool, c.subnetBits = pool, bits
		return nil
	}
}

// WithSubnetStore keeps subnet reservations in s (the node's: state.db
// through internal/storeadapt). Without it they live in memory, as long as
// the process: enough for tests and for a Manager that only removes node
// rules.
func WithSubnetStore(s SubnetStore) Option {
	return func(c *config) error {
		if s == nil {
			return invalid("subnet store: must not be nil")
		}
		c.store = s
		return nil
	}
}

var (
	bridgePrefixRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9]{0,4}$`) })
	chainPrefixRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Z][A-Z0-9]{0,11}$`) })
	netnsPrefixRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`) })
)

// WithNames sets the prefixes of everything the manager names on the host:
// pod bridges (1-5 lowercase chars, default "pn"; the rest of the 15
// characters is a hash of the pod), iptables chains (1-12 uppercase chars,
// default "PINACLE") and namespace names (default "pinacle-"). Two managers
// with different prefixes never touch each other's resources.
func WithNames(bridgePrefix, chainPrefix, netnsPrefix string) Option {
	return func(c *config) error {
		if !bridgePrefixRE().MatchString(bridgePrefix) {
			return invalid("bridge prefix %q: must match %s", bridgePrefix, bridgePrefixRE)
		}
		if !chainPrefixRE().MatchString(chainPrefix) {
			return invalid("chain prefix %q: must match %s", chainPrefix, chainPrefixRE)
		}
		if !netnsPrefixRE().MatchString(netnsPrefix) {
			return invalid("netns prefix %q: must match %s", netnsPrefix, netnsPrefixRE)
		}
		c.bridgePrefix, c.chainPrefix, c.netnsPrefix = bridgePrefix, chainPrefix, netnsPrefix
		return nil
	}
}

// WithHostDNS overrides how the host's upstream resolvers are found
// (default HostDNS: /etc/resolv.conf, or systemd-resolved's upstreams).
func WithHostDNS(f func() (DNS, error)) Option {
	return func(c *config) error {
		if f == nil {
			return invalid("host dns: must not be nil")
		}
		c.hostDNS = f
		return nil
	}
}

// WithLogger sets the logger; the manager is silent without one.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("logger: must not be nil")
		}
		c.log = l
		return nil
	}
}

// WithWarmPool keeps n default networks made ahead of time (RunWarmPool
// fills it) for Setup to hand to pods with the default network; 0, the
// default, turns it off.
func WithWarmPool(n int) Option {
	return func(c *config) error {
		if n < 0 || n > 64 {
			return invalid("warm pool size %d: must be 0 to 64", n)
		}
		c.warmSize = n
		return nil
	}
}
