package gateway

import (
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"
)

// newProxy is the reverse proxy to the backend Resolve named (carried in
// the request's context). httputil.ReverseProxy passes WebSocket and other
// upgrades through, flushes streamed responses (no Content-Length, or
// text/event-stream) as they come, and streams request bodies, so large
// uploads are never buffered.
func newProxy(g *Gateway) *httputil.ReverseProxy {
	tr := &http.Transport{
		Proxy:                 nil, // never an environment proxy: backends are pod IPs
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // long polls and slow dev servers are normal
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			be, _ := pr.In.Context().Value(ctxKey{}).(Backend)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = be.Addr
			pr.Out.Host = pr.In.Host // dev servers and same-origin checks see the name the browser used
			pr.SetXForwarded()       // X-Forwarded-For/-Host/-Proto, client-sent ones dropped
			stripCookie(pr.Out.Header, CookieName)
			for k, v := range be.Header {
				pr.Out.Header[k] = v
			}
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
