// Package nodeconfig is the node's configuration file (/etc/pinacle/node.yaml):
// strict decoding, defaults and validation.
package nodeconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

// DefaultPath is where serve looks for its configuration.
const DefaultPath = "/etc/pinacle/node.yaml"

// Config is the node's configuration. Every field has a default.
type Config struct {
	DataRoot     string `json:"dataRoot,omitempty"`     // /var/lib/pinacle
	RunscRoot    string `json:"runscRoot,omitempty"`    // /run/pinacle/runsc
	Socket       string `json:"socket,omitempty"`       // /run/pinacle/node.sock
	SocketGroup  string `json:"socketGroup,omitempty"`  // pinacle (if the group exists)
	TemplatesDir string `json:"templatesDir,omitempty"` // /etc/pinacle/templates
	// CgroupParent is the cgroup the pods' cgroups are made under (v1:
	// under every controller). Nodes sharing a host give each their own.
	CgroupParent string `json:"cgroupParent,omitempty"` // /pinacle
	// Ports is the host port pool and where the forwarder listens.
	Ports struct {
		Min int `json:"min,omitempty"` // 30000
		Max int `json:"max,omitempty"` // 40000
		// ListenAddr is where host ports listen: loopback by default, so
		// nothing is open to the network (Lima forwards loopback ports to
		// the Mac's loopback). 0.0.0.0 opens every pod port to every peer.
		ListenAddr string `json:"listenAddr,omitempty"` // 127.0.0.1
		// PublicListenAddr is where ports a pod spec marks public listen.
		PublicListenAddr string `json:"publicListenAddr,omitempty"` // 0.0.0.0
		URLHost          string `json:"urlHost,omitempty"`          // host printed in URLs: 127.0.0.1
		// KernelForward forwards running pods' ports with iptables DNAT
		// (default true); false relays every connection in userspace.
		KernelForward *bool `json:"kernelForward,omitempty"`
	} `json:"ports,omitzero"`
	// Gateway is the authenticating HTTP gateway (docs/security.md):
	// <port>-<pod>.<domain> for holders of a signed link.
	Gateway Gateway `json:"gateway,omitzero"`
	// Network is the pod subnet pool.
	Network struct {
		Pool       string `json:"pool,omitempty"`       // 10.88.0.0/16
		SubnetBits int    `json:"subnetBits,omitempty"` // 28
		// WarmPool is how many default networks are kept made ahead of
		// time, so a pod with the default network skips CNI on its start
		// path (default 2; 0 turns it off).
		WarmPool *int `json:"warmPool,omitempty"`
	} `json:"network,omitzero"`
	// WarmPool keeps sandboxes booted ahead of time for pod create to
	// claim (docs/warmpool.md).
	WarmPool WarmPool `json:"warmPool,omitzero"`
	Registry struct {
		Mirrors            map[string][]string `json:"mirrors,omitempty"` // docker.io: [http://127.0.0.1:5000]
		InsecureRegistries []string            `json:"insecureRegistries,omitempty"`
	} `json:"registry,omitzero"`
	// Git is where pods' githubRepo (owner/repo) is cloned from.
	Git struct {
		BaseURL string `json:"baseURL,omitempty"` // https://github.com (a mirror, GitHub Enterprise, or file:///srv/git)
	} `json:"git,omitzero"`
	// MetricsAddr serves Prometheus metrics; empty: off. Use loopback.
	MetricsAddr string `json:"metricsAddr,omitempty"`
	Platform    string `json:"platform,omitempty"` // runsc platform: systrap
	// RunscDebugDir turns on runsc --debug with logs under it, one
	// directory per container: for looking into a slow or failing
	// sandbox, not for production (the logs grow without bound).
	RunscDebugDir string `json:"runscDebugDir,omitempty"`
	LogLevel      string `json:"logLevel,omitempty"` // info
	// IdleTimeout hibernates a running pod after this long without
	// activity (docs/hibernate.md), unless its spec sets its own
	// idleTimeout. 0 (the default): only pods whose spec sets one.
	IdleTimeout podspec.Duration `json:"idleTimeout,omitzero"`
	// Snapshots are template snapshots (docs/snapshots.md): pods of a
	// template restored from a checkpoint of a healthy one.
	Snapshots struct {
		// Enabled turns them on (default true): a template with a snapshot
		// creates its pods from it.
		Enabled *bool `json:"enabled,omitempty"`
		// Auto snapshots a template when its first cold-created pod has
		// every service healthy (default false: only template snapshot).
		Auto bool `json:"auto,omitempty"`
		// MaxMB caps their disk use; the least recently used go first
		// (default 4096; 0: no cap).
		MaxMB *int64 `json:"maxMb,omitempty"`
	} `json:"snapshots,omitzero"`
}

// Gateway configures the authenticating HTTP gateway.
type Gateway struct {
	// Enabled turns the gateway on (default true).
	Enabled    *bool  `json:"enabled,omitempty"`
	ListenAddr string `json:"listenAddr,omitempty"` // 127.0.0.1
	Port       int    `json:"port,omitempty"`       // 29000
	// Domain pods are served under: <port>-<pod>.<domain>. Browsers
	// resolve *.localhost to loopback; a real host needs a wildcard DNS
	// record for its own domain.
	Domain string `json:"domain,omitempty"` // localhost
	// URLScheme and URLPort are what links print: https and 443 behind a
	// TLS terminator; URLPort 0 means the gateway's port.
	URLScheme string `json:"urlScheme,omitempty"` // http
	URLPort   int    `json:"urlPort,omitempty"`
	// DefaultTTL and MaxTTL bound how long a link and its cookie work.
	DefaultTTL podspec.Duration `json:"defaultTTL,omitzero"` // 24h
	MaxTTL     podspec.Duration `json:"maxTTL,omitzero"`     // 720h
	// MaxConns caps open client connections; MaxConnsPerPod each pod's
	// concurrent requests (WebSockets included).
	MaxConns       int `json:"maxConns,omitempty"`       // 4096
	MaxConnsPerPod int `json:"maxConnsPerPod,omitempty"` // 512
}

// Load reads path (a missing file at the default path means defaults).
func Load(path string, mustExist bool) (*Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !mustExist:
	case err != nil:
		return nil, fmt.Errorf("config %s: %w", path, err)
	default:
		if err := podspec.DecodeStrict(b, &c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	c.Default()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// Default fills unset fields.
func (c *Config) Default() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.DataRoot, "/var/lib/pinacle")
	def(&c.RunscRoot, "/run/pinacle/runsc")
	def(&c.Socket, "/run/pinacle/node.sock")
	def(&c.SocketGroup, "pinacle")
	def(&c.TemplatesDir, "/etc/pinacle/templates")
	def(&c.CgroupParent, "/pinacle")
	def(&c.Ports.ListenAddr, "127.0.0.1")
	def(&c.Ports.PublicListenAddr, "0.0.0.0")
	def(&c.Ports.URLHost, "127.0.0.1")
	def(&c.Network.Pool, "10.88.0.0/16")
	def(&c.Platform, "systrap")
	def(&c.LogLevel, "info")
	def(&c.Git.BaseURL, "https://github.com")
	if c.Ports.Min == 0 && c.Ports.Max == 0 {
		c.Ports.Min, c.Ports.Max = 30000, 40000
	}
	if c.Ports.KernelForward == nil {
		on := true
		c.Ports.KernelForward = &on
	}
	c.Gateway.defaults()
	if c.Network.SubnetBits == 0 {
		c.Network.SubnetBits = 28
	}
	if c.Network.WarmPool == nil {
		n := 2
		c.Network.WarmPool = &n
	}
	if c.Snapshots.Enabled == nil {
		on := true
		c.Snapshots.Enabled = &on
	}
	if c.Snapshots.MaxMB == nil {
		mb := int64(4096)
		c.Snapshots.MaxMB = &mb
	}
	c.WarmPool.defaults()
}

// Validate checks the values, naming the field of each problem.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument))
	}
	if c.Ports.Min < 1 || c.Ports.Max > 65535 || c.Ports.Min > c.Ports.Max {
		bad("ports", "range %d-%d: want 1 <= min <= max <= 65535", c.Ports.Min, c.Ports.Max)
	}
	if _, err := netip.ParseAddr(c.Ports.ListenAddr); err != nil {
		bad("ports.listenAddr", "%q is not an IP address", c.Ports.ListenAddr)
	}
	if _, err := netip.ParseAddr(c.Ports.PublicListenAddr); err != nil {
		bad("ports.publicListenAddr", "%q is not an IP address", c.Ports.PublicListenAddr)
	}
	if !validCgroupParent(c.CgroupParent) {
		bad("cgroupParent", "%q: want an absolute cgroup path below the root, of letters, digits, '.', '_', '-' and '/', e.g. /pinacle", c.CgroupParent)
	}
	c.Gateway.validate(bad)
	c.WarmPool.validate(bad)
	p, err := netip.ParsePrefix(c.Network.Pool)
	if err != nil || !p.Addr().Is4() {
		bad("network.pool", "%q is not an IPv4 CIDR", c.Network.Pool)
	} else if c.Network.SubnetBits <= p.Bits() || c.Network.SubnetBits > 30 {
		bad("network.subnetBits", "%d: want more than the pool's /%d and at most 30", c.Network.SubnetBits, p.Bits())
	}
	if d := c.IdleTimeout.Duration; d < 0 || (d > 0 && d < time.Second) {
		bad("idleTimeout", "%s: want 0 (off) or at least 1s", d)
	}
	if n := c.Snapshots.MaxMB; n != nil && *n < 0 {
		bad("snapshots.maxMb", "%d: want 0 (no cap) or more", *n)
	}
	if n := c.Network.WarmPool; n != nil && (*n < 0 || *n > 64) {
		bad("network.warmPool", "%d: want 0 (off) to 64", *n)
	}
	if u, err := url.Parse(c.Git.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file" && u.Scheme != "ssh") {
		bad("git.baseURL", "%q: want an https, http, ssh or file URL", c.Git.BaseURL)
	}
	switch c.Platform {
	case "systrap", "ptrace", "kvm":
	default:
		bad("platform", "%q: want systrap, ptrace or kvm", c.Platform)
	}
	return errors.Join(errs...)
}

// validCgroupParent: absolute, clean, not the root, and of characters
// that are safe in a cgroupfs path.
func validCgroupParent(p string) bool {
	if p == "" || p[0] != '/' || p == "/" || path.Clean(p) != p {
		return false
	}
	for _, r := range p {
		ok := r == '/' || r == '.' || r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}
