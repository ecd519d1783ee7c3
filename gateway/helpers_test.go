package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

const testPod = "p0123456789"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a gateway served on loopback in front of real backends, and a
// client that sends every host name to it (as *.localhost resolves to
// loopback in a browser).
type env struct {
	gw      *Gateway
	addr    string // the gateway's listener
	dir     string
	clk     *clock
	mu      sync.Mutex
	routes  map[string]string      // "pod/port" -> backend
	down    map[string]bool        // pods that are not running
	headers map[string]http.Header // "pod/port" -> Backend.Header
	extras  map[string]Backend     // "pod/port" -> Backend.Cookies, .Activity, .Woken
}

func newEnv(t testing.TB, opts ...Option) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), clk: &clock{t: time.Now()}, routes: map[string]string{}, down: map[string]bool{}, headers: map[string]http.Header{}, extras: map[string]Backend{}}
	e.start(t, opts...)
	return e
}

// start (re)creates the gateway on e.dir and serves it.
func (e *env) start(t testing.TB, opts ...Option) {
	t.Helper()
	gw, err := New(e.dir, ResolverFunc(e.resolve), append([]Option{withClock(e.clk.now), WithURL("http", 0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	e.gw, e.addr = gw, ln.Addr().String()
}

func (e *env) resolve(_ context.Context, pod, port string) (Backend, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down[pod] {
		return Backend{}, errdefs.ErrUnavailable
	}
	a, ok := e.routes[pod+"/"+port]
	if !ok {
		return Backend{}, errdefs.ErrNotFound
	}
	x := e.extras[pod+"/"+port]
	return Backend{Addr: a, Header: e.headers[pod+"/"+port], Cookies: x.Cookies, Activity: x.Activity, Woken: x.Woken}, nil
}

// backend serves h on loopback as port of pod.
func (e *env) backend(t testing.TB, pod, port string, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	e.mu.Lock()
	e.routes[pod+"/"+port] = s.Listener.Addr().String()
	e.mu.Unlock()
	return s
}

// dial connects to the gateway whatever the host name.
func (e *env) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "tcp", e.addr)
}

// client is a browser-like client: a cookie jar, redirects followed.
func (e *env) client(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: e.dial}}
}

// link signs a link, failing the test on error.
func (e *env) link(t testing.TB, pod, port string, ttl time.Duration) *Link {
	t.Helper()
	l, err := e.gw.Link(pod, port, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
