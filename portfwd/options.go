package portfwd

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Defaults. The pool is what lima.yaml forwards to the Mac.
const (
	DefaultPortMin         = 30000
	DefaultPortMax         = 40000
	DefaultIdleTimeout     = time.Hour
	DefaultMaxConnsPerPort = 4096
	DefaultDialTimeout     = 5 * time.Second
	DefaultDrainTimeout    = 10 * time.Second
	DefaultWakeTimeout     = 60 * time.Second
)

type options struct {
	listenAddr   netip.Addr
	publicAddr   netip.Addr
	portMin      uint16
	portMax      uint16
	idleTimeout  time.Duration
	maxConns     int
	store        AllocationStore
	logger       *slog.Logger
	dialTimeout  time.Duration
	drainTimeout time.Duration
	waker        WakeFunc
	wakeTimeout  time.Duration
	kernel       KernelPath
}

func defaultOptions() options {
	return options{
		listenAddr:   netip.IPv4Unspecified(),
		publicAddr:   netip.IPv4Unspecified(),
		portMin:      DefaultPortMin,
		portMax:      DefaultPortMax,
		idleTimeout:  DefaultIdleTimeout,
		maxConns:     DefaultMaxConnsPerPort,
		logger:       slog.New(slog.DiscardHandler),
		dialTimeout:  DefaultDialTimeout,
		drainTimeout: DefaultDrainTimeout,
		wakeTimeout:  DefaultWakeTimeout,
	}
}

// Option configures a Forwarder. Options reject invalid values.
type Option func(*options) error

func invalid(format string, args ...any) error {
	return fmt.Errorf("portfwd: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// WithListenAddr sets the host address to listen on (default 0.0.0.0, which
// Lima forwards to the Mac).
func WithListenAddr(addr netip.Addr) Option {
	return func(o *options) error {
		if !addr.IsValid() || addr.Zone() != "" {
			return invalid("listen address %q must be a valid IP without zone", addr)
		}
		o.listenAddr = addr
		return nil
	}
}

// WithPublicListenAddr sets the host address ports allocated Public
// listen on (default 0.0.0.0). The kernel path DNATs only what the
// listen address accepts, so a public port's other traffic is relayed.
func WithPublicListenAddr(addr netip.Addr) Option {
	return func(o *options) error {
		if !addr.IsValid() || addr.Zone() != "" {
			return invalid("public listen address %q must be a valid IP without zone", addr)
		}
		o.publicAddr = addr
		return nil
	}
}

// WithPortRange sets the pool that host ports come from, inclusive
// (default 30000-40000).
func WithPortRange(lo, hi uint16) Option {
	return func(o *options) error {
		if lo == 0 || lo > hi {
			return invalid("port range %d-%d: need 1 <= min <= max", lo, hi)
		}
		o.portMin, o.portMax = lo, hi
		return nil
	}
}

// WithIdleTimeout closes connections that moved no bytes either way for d
// (default 1h; 0 disables). It is enforced by a periodic sweep, so a
// connection closes between d and d+d/4 (at most d+5s) after its last byte.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalid("idle timeout %s must be >= 0", d)
		}
		o.idleTimeout = d
		return nil
	}
}

// WithMaxConnsPerPort caps the open connections on one host port (default
// 4096). Connections beyond it are accepted and reset at once, and counted.
func WithMaxConnsPerPort(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return invalid("max conns per port %d must be > 0", n)
		}
		o.maxConns = n
		return nil
	}
}

// WithStore persists allocations in s (default: memory only).
func WithStore(s AllocationStore) Option {
	return func(o *options) error {
		if s == nil {
			return invalid("store must not be nil")
		}
		o.store = s
		return nil
	}
}

// WithLogger sets the logger (default: silent).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return invalid("logger must not be nil")
		}
		o.logger = l
		return nil
	}
}

// WithDialTimeout bounds the dial to the pod (default 5s).
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalid("dial timeout %s must be > 0", d)
		}
		o.dialTimeout = d
		return nil
	}
}

// WithDrainTimeout bounds how long Stop waits for open connections when its
// context has no earlier deadline (default 10s; 0 closes them at once).
func WithDrainTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalid("drain timeout %s must be >= 0", d)
		}
		o.drainTimeout = d
		return nil
	}
}

// WithWaker sets how a Hibernated pod is woken when a connection arrives.
func WithWaker(fn WakeFunc) Option {
	return func(o *options) error {
		if fn == nil {
			return invalid("wake func must not be nil")
		}
		o.waker = fn
		return nil
	}
}

// WithWakeTimeout bounds one wake (default 60s).
func WithWakeTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalid("wake timeout %s must be > 0", d)
		}
		o.wakeTimeout = d
		return nil
	}
}
