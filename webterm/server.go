package webterm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

//go:embed assets/index.html assets/app.js assets/xterm.js assets/xterm.css assets/addon-fit.js assets/LICENSE.*
var assets embed.FS

// Handler serves the terminal page, its assets, /healthz and the /ws
// websocket. Close hangs up every session.
type Handler struct {
	cfg   *config
	host  string
	slots chan struct{}

	ctx    context.Context // ends every session when cancelled
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup

	etagOnce sync.Once
	etags    map[string]string
}

var _ http.Handler = (*Handler)(nil)

// New validates the options and returns a Handler.
func New(opts ...Option) (*Handler, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	ctx, cancel := context.WithCancel(context.Background())
	return &Handler{cfg: cfg, host: host, slots: make(chan struct{}, cfg.maxSessions), ctx: ctx, cancel: cancel}, nil
}

// Shell is the shell each session runs.
func (h *Handler) Shell() string { return h.cfg.shell }

// Sessions is the number of live sessions.
func (h *Handler) Sessions() int { return len(h.slots) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n")) // a prober gone mid-reply needs no answer
	case p == "/ws":
		if !h.authorized(r) {
			http.Error(w, "missing or wrong token", http.StatusUnauthorized)
			return
		}
		h.serveWS(w, r)
	case p == "/" || p == "/index.html":
		if !h.authorized(r) {
			http.Error(w, "missing or wrong token: open this page with ?token=...", http.StatusUnauthorized)
			return
		}
		h.securityHeaders(w)
		w.Header().Set("Cache-Control", "no-store")
		h.serveAsset(w, r, "index.html")
	case strings.HasPrefix(p, "/assets/"):
		h.securityHeaders(w)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.serveAsset(w, r, strings.TrimPrefix(p, "/assets/"))
	default:
		http.NotFound(w, r)
	}
}

// authorized checks the token when one is set: ?token=, or a bearer token
// for clients that are not browsers.
func (h *Handler) authorized(r *http.Request) bool {
	if h.cfg.token == "" {
		return true
	}
	got := r.URL.Query().Get("token")
	if got == "" {
		got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.token)) == 1
}

func (h *Handler) securityHeaders(w http.ResponseWriter) {
	ancestors := "'self'"
	for _, o := range h.cfg.origins {
		ancestors += " " + o
	}
	// xterm.js adds <style> elements for its themes, hence unsafe-inline
	// styles; scripts come only from this server.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
		"connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors "+ancestors)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The token is in the URL: never send it anywhere as a referrer.
	w.Header().Set("Referrer-Policy", "no-referrer")
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	if name == "" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(assets, "assets/"+name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h.etagOnce.Do(h.hashAssets)
	w.Header().Set("ETag", h.etags[name])
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// hashAssets computes ETags once: embedded files have no modification time.
func (h *Handler) hashAssets() {
	h.etags = map[string]string{}
	ents, _ := fs.ReadDir(assets, "assets")
	for _, e := range ents {
		b, _ := fs.ReadFile(assets, "assets/"+e.Name())
		sum := sha256.Sum256(b)
		h.etags[e.Name()] = `"` + hex.EncodeToString(sum[:12]) + `"`
	}
}

func (h *Handler) serveWS(w http.ResponseWriter, r *http.Request) {
	cols, rows, err := parseSize(r.URL.Query().Get)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !h.enter() {
		http.Error(w, "terminal server is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.wg.Done()
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		http.Error(w, errTooMany.Error(), http.StatusServiceUnavailable)
		return
	}
	// Accept rejects (403) an Origin whose host is neither the request's
	// Host nor an allowed pattern: another site's page cannot open a shell
	// with the user's browser.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.origins})
	if err != nil {
		h.cfg.log.Info("webterm: websocket refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	s := &session{cfg: h.cfg, host: h.host, c: c, log: h.cfg.log.With("remote", r.RemoteAddr)}
	s.run(h.ctx, cols, rows)
}

// enter registers a session unless the handler is closed.
func (h *Handler) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

// Close hangs up every session (SIGHUP, then SIGKILL after the grace
// period) and waits for them until ctx ends. New sessions are refused.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Serve serves h on ln until ctx ends, then stops accepting, hangs up
// every session and returns nil. Any other end of serving is an error.
func (h *Handler) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(h.cfg.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.hangupGrace+finalWriteTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx) // on timeout its error is sctx's; h.Close below ends what is left
	if cerr := h.Close(sctx); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil {
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
			err = serr
		}
	}
	return err
}
