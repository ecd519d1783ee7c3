package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Serve serves the gateway on ln until ctx ends, closing a new connection
// at once when the gateway already holds its maximum. Open connections
// (WebSockets included) are closed when ctx ends.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	lim := &limitListener{Listener: ln, max: int64(g.o.maxConns), m: g.metrics}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		lim.closeAll()
	}()
	if err := srv.Serve(lim); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// limitListener admits at most max open connections and tracks them so
// hijacked ones (WebSockets) can be closed on shutdown.
type limitListener struct {
	net.Listener
	max    int64
	active atomic.Int64
	m      *metrics

	mu    sync.Mutex
	conns map[*limitConn]struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > l.max {
			l.active.Add(-1)
			l.m.connsRejected.Inc()
			_ = c.Close()
			continue
		}
		l.m.connsTotal.Inc()
		l.m.connsActive.Inc()
		lc := &limitConn{Conn: c, l: l}
		l.mu.Lock()
		if l.conns == nil {
			l.conns = map[*limitConn]struct{}{}
		}
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		return lc, nil
	}
}

func (l *limitListener) closeAll() {
	l.mu.Lock()
	conns := make([]*limitConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.active.Add(-1)
		c.l.m.connsActive.Dec()
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return err
}
