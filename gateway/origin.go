package gateway

import (
	"net/http"
	"net/url"
)

// Every pod port is its own origin, but all of them are one site
// (<domain> is not a public suffix): a browser sends SameSite=Lax
// cookies on requests from one pod's page to another pod's host. So a
// page served by a hostile pod could drive a neighbour's port with the
// user's cookie (a form POST, a fetch, a WebSocket to a dev server that
// does not check Origin). crossPod refuses what such a page can send:
//
//   - a request whose Origin is another pod (or any other origin): a
//     browser sets Origin on WebSockets, CORS requests and POSTs;
//   - a same-site or cross-site request that is not a top-level
//     navigation (Sec-Fetch-Site / Sec-Fetch-Mode): <img>, <script>,
//     no-cors fetches, which carry no Origin.
//
// Requests between ports of the same pod are allowed (one app's front
// end calling its API), and so are navigations (following a link) and
// clients that are not browsers (no Origin, no Sec-Fetch headers).
func (g *Gateway) crossPod(r *http.Request, pod string) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return true
		}
		opod, _, ok := parseHost(u.Host, g.o.domain)
		return !ok || opod != pod
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-site", "cross-site":
		return r.Header.Get("Sec-Fetch-Mode") != "navigate" || (r.Method != http.MethodGet && r.Method != http.MethodHead)
	}
	return false
}
