package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// AuthPath is the path of a signed link: it sets the cookie from its
// token and redirects to the page the link names (default "/"). The
// gateway answers it itself; it never reaches the pod.
const AuthPath = "/__pinacle/auth"

// CookieName is the gateway's cookie. It is host-only (no Domain), so one
// pod port's cookie is never sent to another's host, and it is removed
// from every request before the request reaches the pod.
const CookieName = "pinacle_gw"

type ctxKey struct{}

// exchange is what the proxy needs of one authorized request: where it
// goes, and the meter that counts its bytes.
type exchange struct {
	be Backend
	m  *meter
}

// ServeHTTP routes by Host, authenticates and proxies.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pod, port, ok := parseHost(r.Host, g.o.domain)
	if !ok {
		g.metrics.request("bad_host")
		writePage(w, http.StatusMisdirectedRequest, pageBadHost, pageData{Domain: g.o.domain})
		return
	}
	if r.URL.Path == AuthPath {
		g.login(w, r, pod, port)
		return
	}
	if g.crossPod(r, pod) {
		g.metrics.request("cross_site")
		writePage(w, http.StatusForbidden, pageCrossSite, pageData{Pod: pod, Port: port})
		return
	}
	if err := g.authorize(r, pod, port); err != nil {
		g.metrics.request("unauthorized")
		g.o.log.Debug("gateway: unauthorized", "pod", pod, "port", port, "err", err)
		writePage(w, http.StatusUnauthorized, pageUnauthorized, pageData{Pod: pod, Port: port, Domain: g.o.domain})
		return
	}
	if !g.acquire(pod) {
		g.metrics.request("over_cap")
		writePage(w, http.StatusServiceUnavailable, pageBusy, pageData{Pod: pod, Port: port})
		return
	}
	defer g.release(pod)
	be, err := g.res.Resolve(r.Context(), pod, port)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		g.metrics.request("not_found")
		writePage(w, http.StatusNotFound, pageNotFound, pageData{Pod: pod, Port: port})
		return
	case err != nil:
		g.metrics.request("unavailable")
		writePage(w, http.StatusServiceUnavailable, pageUnavailable, pageData{Pod: pod, Port: port})
		return
	}
	if be.Woken {
		// Keep-alive connections from before the hibernation may be
		// dead; a request that is not replayable would fail on one.
		g.transport.CloseIdleConnections()
	}
	if isUpgrade(r) {
		g.metrics.upgrades.Inc()
	}
	g.metrics.request("proxied")
	x := &exchange{be: be, m: newMeter(g.creditor(be), activityEvery, g.o.now)}
	// For an upgrade ServeHTTP returns when the connection closes, so
	// the last flush credits the tail of a WebSocket too.
	defer x.m.flush()
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, x)))
}

// creditor is where an exchange's counted bytes go: the gateway's byte
// counter and the backend's Activity.
func (g *Gateway) creditor(be Backend) func(int64) {
	return func(n int64) {
		g.metrics.bytes.Add(float64(n))
		if be.Activity != nil {
			be.Activity(n)
		}
	}
}

// login sets the cookie from a link's token and redirects to the clean URL.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request, pod, port string) {
	tok := r.URL.Query().Get("token")
	c, err := g.check(tok, pod, port)
	if err != nil {
		g.metrics.request("unauthorized")
		g.o.log.Debug("gateway: bad link", "pod", pod, "port", port, "err", err)
		writePage(w, http.StatusUnauthorized, pageUnauthorized, pageData{Pod: pod, Port: port, Domain: g.o.domain, BadLink: true})
		return
	}
	g.metrics.request("login")
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    tok,
		Path:     "/",
		Expires:  c.Expires,
		MaxAge:   max(1, int((c.Expires.Sub(g.o.now())+time.Second-1)/time.Second)),
		HttpOnly: true,
		Secure:   g.o.scheme == "https",
		SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
}

// safeNext keeps a redirect target on this host: a path, never "//host"
// or a URL with a scheme.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

// authorize checks the request's cookie for pod and port.
func (g *Gateway) authorize(r *http.Request, pod, port string) error {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return err
	}
	_, err = g.check(ck.Value, pod, port)
	return err
}

// check verifies tok (signature, expiry), that it is for pod and port, and
// that the pod's tokens have not been revoked since it was signed.
func (g *Gateway) check(tok, pod, port string) (claims, error) {
	c, err := g.signer.verify(tok, g.o.now())
	if err != nil {
		return claims{}, err
	}
	if c.Pod != pod || c.Port != port {
		return claims{}, errWrongHost
	}
	if e, ok := g.epochs.current(pod); !ok || e != c.Epoch {
		return claims{}, errRevoked
	}
	return c, nil
}

// acquire takes one of pod's request slots; false when it has none left.
func (g *Gateway) acquire(pod string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight[pod] >= g.o.maxConnsPerPod {
		return false
	}
	g.inflight[pod]++
	return true
}

func (g *Gateway) release(pod string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight[pod]--; g.inflight[pod] <= 0 {
		delete(g.inflight, pod)
	}
}

func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Connection") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}
