package gateway

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

type options struct {
	domain         string
	scheme         string
	urlPort        int
	defaultTTL     time.Duration
	maxTTL         time.Duration
	maxConns       int
	maxConnsPerPod int
	log            *slog.Logger
	now            func() time.Time
}

func defaults() options {
	return options{
		domain:         "localhost",
		scheme:         "http",
		defaultTTL:     24 * time.Hour,
		maxTTL:         30 * 24 * time.Hour,
		maxConns:       4096,
		maxConnsPerPod: 512,
		log:            discard(),
		now:            time.Now,
	}
}

// Option configures a Gateway.
type Option func(*options) error

var domainRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// WithDomain sets the domain pods are served under (default "localhost":
// browsers resolve *.localhost to loopback with no DNS setup). Requests
// for any other domain are refused.
func WithDomain(d string) Option {
	return func(o *options) error {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if len(d) > 200 || !domainRe.MatchString(d) {
			return fmt.Errorf("gateway: domain %q: want a DNS name such as localhost or pods.example.com: %w", d, errdefs.ErrInvalidArgument)
		}
		o.domain = d
		return nil
	}
}

// WithURL sets the scheme ("http" or "https", for a TLS terminator in
// front) and port printed in links (0: none, the scheme's default). With
// https the cookie is marked Secure.
func WithURL(scheme string, port int) Option {
	return func(o *options) error {
		if scheme != "http" && scheme != "https" {
			return fmt.Errorf("gateway: scheme %q: want http or https: %w", scheme, errdefs.ErrInvalidArgument)
		}
		if port < 0 || port > 65535 {
			return fmt.Errorf("gateway: port %d: want 0-65535: %w", port, errdefs.ErrInvalidArgument)
		}
		o.scheme, o.urlPort = scheme, port
		return nil
	}
}

// WithTTL sets the default and the maximum lifetime of a link.
func WithTTL(def, max time.Duration) Option {
	return func(o *options) error {
		if def <= 0 || max < def {
			return fmt.Errorf("gateway: ttl %s, max %s: want 0 < ttl <= max: %w", def, max, errdefs.ErrInvalidArgument)
		}
		o.defaultTTL, o.maxTTL = def, max
		return nil
	}
}

// WithMaxConns caps the gateway's open client connections (over it, a new
// connection is closed at once) and each pod's concurrent requests,
// WebSockets included (over it, 503).
func WithMaxConns(total, perPod int) Option {
	return func(o *options) error {
		if total <= 0 || perPod <= 0 {
			return fmt.Errorf("gateway: max conns %d, per pod %d: want > 0: %w", total, perPod, errdefs.ErrInvalidArgument)
		}
		o.maxConns, o.maxConnsPerPod = total, perPod
		return nil
	}
}

// WithLogger sets the logger (default: silent).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("gateway: nil logger: %w", errdefs.ErrInvalidArgument)
		}
		o.log = l
		return nil
	}
}

// withClock sets the clock (tests).
func withClock(now func() time.Time) Option {
	return func(o *options) error { o.now = now; return nil }
}
