package imagestore

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Defaults for the limits a layer must respect.
const (
	DefaultMaxLayerSize = 32 << 30 // uncompressed bytes per layer
	DefaultMaxEntrySize = 16 << 30 // bytes per file in a layer
	DefaultJobs         = 4        // layers fetched at once
)

// Option configures a Store.
type Option func(*options) error

type options struct {
	mirrors   map[string][]*url.URL // registry host -> mirrors, tried in order
	insecure  map[string]bool       // hosts reachable over plain http / unverified TLS
	jobs      int
	log       *slog.Logger
	maxLayer  int64
	maxEntry  int64
	userAgent string
}

func defaultOptions() options {
	return options{
		mirrors:   map[string][]*url.URL{},
		insecure:  map[string]bool{},
		jobs:      DefaultJobs,
		log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		maxLayer:  DefaultMaxLayerSize,
		maxEntry:  DefaultMaxEntrySize,
		userAgent: "pinacle-node",
	}
}

// canonicalRegistry maps the names Docker Hub goes by to the one
// go-containerregistry uses in references.
func canonicalRegistry(host string) string {
	switch host {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return name.DefaultRegistry
	}
	return host
}

// WithMirrors sets registry mirrors: registry host (docker.io, ghcr.io,
// 127.0.0.1:5000) to mirror URLs (http://127.0.0.1:5000, https://m.example/prefix).
// A pull tries each mirror in order, then the registry itself. A mirror
// given as http:// is reached over plain http: naming it is the opt-in.
func WithMirrors(m map[string][]string) Option {
	return func(o *options) error {
		for host, urls := range m {
			if host == "" || strings.ContainsAny(host, "/ ") {
				return fmt.Errorf("mirror registry %q: want a host[:port]: %w", host, errdefs.ErrInvalidArgument)
			}
			for _, s := range urls {
				u, err := ParseMirrorURL(s)
				if err != nil {
					return err
				}
				o.mirrors[canonicalRegistry(host)] = append(o.mirrors[canonicalRegistry(host)], u)
			}
		}
		return nil
	}
}

// ParseMirrorURL validates a mirror URL: http or https, a host, an optional path prefix.
func ParseMirrorURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mirror %q: want http[s]://host[:port][/prefix]: %w", s, errdefs.ErrInvalidArgument)
	}
	u.Path = strings.Trim(u.Path, "/")
	return u, nil
}

// WithInsecureRegistries lets the store reach these registry hosts
// (host[:port]) over plain http or TLS without verification. Loopback
// registries (127.0.0.0/8, localhost, ::1) need no entry, as with Docker.
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/ ") {
				return fmt.Errorf("insecure registry %q: want a host[:port]: %w", h, errdefs.ErrInvalidArgument)
			}
			o.insecure[canonicalRegistry(h)] = true
		}
		return nil
	}
}

// WithJobs bounds how many layers are fetched and unpacked at once.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("jobs %d: must be > 0: %w", n, errdefs.ErrInvalidArgument)
		}
		o.jobs = n
		return nil
	}
}

// WithLogger sets the logger; the store is silent without one.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("logger: nil: %w", errdefs.ErrInvalidArgument)
		}
		o.log = l
		return nil
	}
}

// WithMaxLayerSize caps the uncompressed size of one layer.
func WithMaxLayerSize(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("max layer size %d: must be > 0: %w", n, errdefs.ErrInvalidArgument)
		}
		o.maxLayer = n
		return nil
	}
}

// WithMaxEntrySize caps the size of one file in a layer.
func WithMaxEntrySize(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("max entry size %d: must be > 0: %w", n, errdefs.ErrInvalidArgument)
		}
		o.maxEntry = n
		return nil
	}
}

// PullOption configures one Pull or Import.
type PullOption func(*pullOptions) error

type pullOptions struct {
	progress func(Event)
	ref      string
}

// WithProgress receives progress events. Calls are serialized, so fn need
// not be safe for concurrent use, but it must be quick.
func WithProgress(fn func(Event)) PullOption {
	return func(o *pullOptions) error {
		if fn == nil {
			return fmt.Errorf("progress func: nil: %w", errdefs.ErrInvalidArgument)
		}
		o.progress = fn
		return nil
	}
}

// WithRef names imported images that carry no full reference of their
// own (an OCI layout entry tagged only "latest", a docker save without
// RepoTags). A bare tag from the source replaces the tag of ref.
func WithRef(ref string) PullOption {
	return func(o *pullOptions) error {
		if _, err := name.ParseReference(ref); err != nil {
			return fmt.Errorf("image ref %q: %w: %w", ref, err, errdefs.ErrInvalidArgument)
		}
		o.ref = ref
		return nil
	}
}
