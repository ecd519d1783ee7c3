package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Resolver finds where a pod's port is served. The gateway asks it only
// for requests that carry a valid token for that pod and port.
type Resolver interface {
	// Resolve returns the backend of port name port of pod pod. A pod or
	// port that does not exist is errdefs.ErrNotFound; a pod that is not
	// running is errdefs.ErrUnavailable.
	Resolve(ctx context.Context, pod, port string) (Backend, error)
}

// Backend is where the gateway sends a request.
type Backend struct {
	Addr string // pod IP:internal port, "host:port"
	// Header is set on every request to the backend, replacing what the
	// client sent: the node's credential for a service that checks one
	// (the web terminal's bearer token), so that service answers only
	// through the gateway.
	Header http.Header
	// Cookies are added to every request to the backend, replacing any
	// of the same name the client sent: the node's credential for a
	// service that takes it as a session cookie (code-server).
	Cookies []*http.Cookie
	// Activity, when set, is credited with the bytes the exchange moves
	// (request and response bodies, both directions of a WebSocket):
	// every second at most while they move and when the exchange ends,
	// so a long-lived connection in use counts as the pod's activity.
	// It may be called from several goroutines at once.
	Activity func(bytes int64)
	// Woken says the pod was woken from hibernation for this request:
	// right after a restore its stack may refuse connections for a moment,
	// so the gateway retries a refused dial for a while instead of
	// answering 502 (the forwarder does the same for its host ports).
	Woken bool
}

// ResolverFunc is a Resolver made of a function.
type ResolverFunc func(ctx context.Context, pod, port string) (Backend, error)

// Resolve implements Resolver.
func (f ResolverFunc) Resolve(ctx context.Context, pod, port string) (Backend, error) {
	return f(ctx, pod, port)
}

// Gateway is the authenticating reverse proxy. It is an http.Handler;
// Serve runs it on a listener with the connection cap. Safe for
// concurrent use.
type Gateway struct {
	o         options
	signer    signer
	epochs    *epochs
	res       Resolver
	proxy     *httputil.ReverseProxy
	transport *http.Transport // the proxy's
	metrics   *metrics

	mu       sync.Mutex
	inflight map[string]int // per pod
}

var _ http.Handler = (*Gateway)(nil)

// Key and epoch files under the gateway's state directory.
const (
	KeyFile    = "key"
	epochsFile = "epochs.json"
)

// New returns a gateway keeping its signing key and token epochs under
// stateDir (created 0700; the key file is 0600 and made on first use).
// stateDir must be on the host only, never mounted into a pod.
func New(stateDir string, res Resolver, opts ...Option) (*Gateway, error) {
	o := defaults()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if res == nil {
		return nil, fmt.Errorf("gateway: nil resolver: %w", errdefs.ErrInvalidArgument)
	}
	key, err := loadKey(filepath.Join(stateDir, KeyFile))
	if err != nil {
		return nil, err
	}
	ep, err := loadEpochs(filepath.Join(stateDir, epochsFile))
	if err != nil {
		return nil, err
	}
	g := &Gateway{o: o, signer: signer{key: key}, epochs: ep, res: res, metrics: newMetrics(), inflight: map[string]int{}}
	g.proxy = newProxy(g)
	g.transport = g.proxy.Transport.(*http.Transport)
	return g, nil
}

// Link is a signed URL for one port of one pod.
type Link struct {
	URL     string    `json:"url"`     // opens the port, setting the cookie
	Host    string    `json:"host"`    // the clean URL the link redirects to
	Expires time.Time `json:"expires"` // when the link and its cookie stop working
}

// labelRe is what pod IDs and port names must look like to be a host name
// label; pod IDs additionally have no '-' (see host.go).
var labelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// Link signs a link to port of pod valid for ttl (0: the default TTL; at
// most the maximum TTL). The pod gets a token epoch if it has none.
func (g *Gateway) Link(pod, port string, ttl time.Duration) (*Link, error) {
	switch {
	case !labelRe.MatchString(pod) || len(pod) > 63 || containsDash(pod):
		return nil, fmt.Errorf("gateway: pod %q: want a pod ID (lowercase letters and digits): %w", pod, errdefs.ErrInvalidArgument)
	case !labelRe.MatchString(port) || len(hostLabel(pod, port)) > 63:
		return nil, fmt.Errorf("gateway: port %q: want a DNS label of at most %d characters: %w", port, 62-len(pod), errdefs.ErrInvalidArgument)
	case ttl < 0 || ttl > g.o.maxTTL:
		return nil, fmt.Errorf("gateway: ttl %s: want 0 (default %s) up to %s: %w", ttl, g.o.defaultTTL, g.o.maxTTL, errdefs.ErrInvalidArgument)
	case ttl == 0:
		ttl = g.o.defaultTTL
	}
	epoch, err := g.epochs.ensure(pod)
	if err != nil {
		return nil, err
	}
	exp := g.o.now().Add(ttl).Truncate(time.Second)
	tok := g.signer.sign(claims{Pod: pod, Port: port, Epoch: epoch, Expires: exp})
	base := g.baseURL(pod, port)
	return &Link{URL: base + AuthPath + "?" + url.Values{"token": {tok}}.Encode(), Host: base + "/", Expires: exp}, nil
}

// Revoke invalidates every link and cookie of pod, now and across
// restarts. Idempotent: revoking a pod with no links is success.
func (g *Gateway) Revoke(pod string) error { return g.epochs.revoke(pod) }

// baseURL is scheme://<port>-<pod>.<domain>[:port] without a path.
func (g *Gateway) baseURL(pod, port string) string {
	h := hostLabel(pod, port) + "." + g.o.domain
	if p := g.o.urlPort; p != 0 && !(g.o.scheme == "http" && p == 80) && !(g.o.scheme == "https" && p == 443) {
		h += ":" + strconv.Itoa(p)
	}
	return g.o.scheme + "://" + h
}

// HostURL is the clean URL of port of pod through the gateway (what a
// link redirects to); it works in a browser that holds the cookie.
func (g *Gateway) HostURL(pod, port string) string { return g.baseURL(pod, port) + "/" }

// Domain is the domain the gateway serves pods under.
func (g *Gateway) Domain() string { return g.o.domain }

func containsDash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return true
		}
	}
	return false
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
