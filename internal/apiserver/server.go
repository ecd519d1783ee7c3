package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// DefaultMaxBodyBytes limits request bodies.
const DefaultMaxBodyBytes = 1 << 20

// Server serves an api.Service over HTTP.
type Server struct {
	svc             api.Service
	log             *slog.Logger
	version         string
	maxBody         int64
	shutdownTimeout time.Duration
	mux             *http.ServeMux

	// streams ends streaming responses and exec sessions when shutdown
	// starts: they would otherwise hold Shutdown until its deadline.
	streams      context.Context
	cancelStream context.CancelFunc
	execs        sync.WaitGroup
}

// Option configures a Server.
type Option func(*Server) error

// WithLogger logs requests and errors to l (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) error {
		if l == nil {
			return fmt.Errorf("logger: nil: %w", errdefs.ErrInvalidArgument)
		}
		s.log = l
		return nil
	}
}

// WithVersion sets the version /v1/version reports.
func WithVersion(v string) Option {
	return func(s *Server) error { s.version = v; return nil }
}

// WithMaxBodyBytes limits request bodies (default 1 MiB).
func WithMaxBodyBytes(n int64) Option {
	return func(s *Server) error {
		if n <= 0 {
			return fmt.Errorf("max body bytes %d: must be > 0: %w", n, errdefs.ErrInvalidArgument)
		}
		s.maxBody = n
		return nil
	}
}

// WithShutdownTimeout bounds how long Serve waits for in-flight requests
// after its context ends (default 10s).
func WithShutdownTimeout(d time.Duration) Option {
	return func(s *Server) error {
		if d <= 0 {
			return fmt.Errorf("shutdown timeout %v: must be > 0: %w", d, errdefs.ErrInvalidArgument)
		}
		s.shutdownTimeout = d
		return nil
	}
}

// NewServer returns a server for svc.
func NewServer(svc api.Service, opts ...Option) (*Server, error) {
	if svc == nil {
		return nil, fmt.Errorf("api server: nil service: %w", errdefs.ErrInvalidArgument)
	}
	s := &Server{
		svc:             svc,
		log:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		version:         "dev",
		maxBody:         DefaultMaxBodyBytes,
		shutdownTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.streams, s.cancelStream = context.WithCancel(context.Background())
	s.mux = http.NewServeMux()
	s.routes()
	return s, nil
}

// Handler is the server's HTTP handler, with request logging.
func (s *Server) Handler() http.Handler { return s.logRequests(s.rejectUncleanPaths(s.mux)) }

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, ends streams and exec sessions, and waits for other requests
// up to the shutdown timeout. It closes ln. A Server serves once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Request contexts must not end with ctx: Shutdown decides.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(s.cancelStream)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.cancelStream()
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		s.log.Warn("api: shutdown timed out, closing connections", "err", err)
		hs.Close()
	}
	// Hijacked exec connections are not tracked by http.Server.
	done := make(chan struct{})
	go func() { s.execs.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", e)
	}
	return nil
}

// Run serves svc on the unix socket at socketPath until ctx ends: the
// whole of what `pinacle-node serve` needs. ready (may be nil) is called
// once the socket accepts connections (for sd_notify READY=1).
func Run(ctx context.Context, svc api.Service, socketPath string, logger *slog.Logger, ready func(), opts ...Option) error {
	if logger != nil {
		opts = append([]Option{WithLogger(logger)}, opts...)
	}
	s, err := NewServer(svc, opts...)
	if err != nil {
		return err
	}
	ln, err := ListenUnix(socketPath)
	if err != nil {
		return err
	}
	s.log.Info("api: listening", "socket", socketPath)
	if ready != nil {
		ready()
	}
	return s.Serve(ctx, ln)
}

// streamContext is r's context, also ended when the server shuts down.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.streams, cancel)
	return ctx, func() { stop(); cancel() }
}

// statusRecorder remembers the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "api: request",
			"method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery,
			"status", rec.status, "bytes", rec.bytes, "duration", time.Since(start))
	})
}
