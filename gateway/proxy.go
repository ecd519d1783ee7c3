package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/internal/wakedial"
)

// newProxy is the reverse proxy to the backend Resolve named (carried in
// the request's context). httputil.ReverseProxy passes WebSocket and other
// upgrades through, flushes streamed responses (no Content-Length, or
// text/event-stream) as they come, and streams request bodies, so large
// uploads are never buffered.
func newProxy(g *Gateway) *httputil.ReverseProxy {
	tr := &http.Transport{
		Proxy:                 nil, // never an environment proxy: backends are pod IPs
		DialContext:           dialBackend,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // long polls and slow dev servers are normal
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			x := pr.In.Context().Value(ctxKey{}).(*exchange)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = x.be.Addr
			pr.Out.Host = pr.In.Host // dev servers and same-origin checks see the name the browser used
			pr.SetXForwarded()       // X-Forwarded-For/-Host/-Proto, client-sent ones dropped
			stripCookie(pr.Out.Header, CookieName)
			for k, v := range x.be.Header {
				pr.Out.Header[k] = v
			}
			for _, c := range x.be.Cookies {
				stripCookie(pr.Out.Header, c.Name)
			}
			for _, c := range x.be.Cookies {
				pr.Out.AddCookie(c)
			}
			if pr.Out.Body != nil && pr.Out.Body != http.NoBody {
				pr.Out.Body = &meteredBody{ReadCloser: pr.Out.Body, m: x.m}
			}
		},
		ModifyResponse: func(res *http.Response) error {
			x := res.Request.Context().Value(ctxKey{}).(*exchange)
			// A 101's body is the connection to the pod, which the proxy
			// copies both ways until either side closes.
			if rwc, ok := res.Body.(io.ReadWriteCloser); ok && res.StatusCode == http.StatusSwitchingProtocols {
				res.Body = &meteredConn{ReadWriteCloser: rwc, m: x.m}
			} else if res.Body != nil {
				res.Body = &meteredBody{ReadCloser: res.Body, m: x.m}
			}
			return nil
		},
		Transport:  tr,
		BufferPool: bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.metrics.request("backend_error")
			g.o.log.Debug("gateway: backend", "host", r.Host, "err", err)
			pod, port, _ := parseHost(r.Host, g.o.domain)
			writePage(w, http.StatusBadGateway, pageUnavailable, pageData{Pod: pod, Port: port})
		},
	}
}

var dialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}

// dialBackend dials a pod; for a request that woke it (the exchange is in
// ctx: the transport dials with the request's values) it retries refusals
// for a while (wakedial).
func dialBackend(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := func(ctx context.Context) (net.Conn, error) { return dialer.DialContext(ctx, network, addr) }
	x, _ := ctx.Value(ctxKey{}).(*exchange)
	if x == nil || !x.be.Woken {
		return dial(ctx)
	}
	return wakedial.Retry(ctx, dial, func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) })
}

// stripCookie removes cookie name from h's Cookie headers, keeping the
// others as they were, and drops a header left empty.
func stripCookie(h http.Header, name string) {
	vals := h.Values("Cookie")
	if len(vals) == 0 {
		return
	}
	var keep []string
	for _, v := range vals {
		for _, part := range strings.Split(v, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if n, _, _ := strings.Cut(part, "="); strings.TrimSpace(n) == name {
				continue
			}
			keep = append(keep, part)
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

// bufferPool gives the proxy's body copies 256 KiB buffers (its default is
// 32 KiB): fewer read and write calls per byte on large downloads.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
