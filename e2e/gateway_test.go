package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// gwClient is a browser-like client of a daemon's gateway: a cookie jar,
// redirects followed, and every host name sent to the gateway's port on
// 127.0.0.1, as a browser resolves *.localhost.
type gwClient struct {
	t    *testing.T
	port int
	jar  *cookiejar.Jar
	http *http.Client
}

func newGWClient(t *testing.T, port int) *gwClient {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	}}
	return &gwClient{t: t, port: port, jar: jar, http: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second}}
}

// get returns the status and body of GET u; hdr are extra header pairs.
func (c *gwClient) get(u string, hdr ...string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// cookie is the gateway cookie the jar holds for u, as a Cookie header.
func (c *gwClient) cookie(u string) string {
	pu, _ := url.Parse(u)
	for _, ck := range c.jar.Cookies(pu) {
		if ck.Name == "pinacle_gw" {
			return ck.Name + "=" + ck.Value
		}
	}
	return ""
}

// ws opens the web terminal's WebSocket at base with cookie.
func (c *gwClient) ws(ctx context.Context, base, cookie string) (*websocket.Conn, *http.Response, error) {
	hdr := http.Header{}
	if cookie != "" {
		hdr.Set("Cookie", cookie)
	}
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"ws?cols=80&rows=24", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: c.http.Transport}, HTTPHeader: hdr,
	})
}

type podURL struct {
	Pod, Port, URL, Host string
	Expires              time.Time
}

func (d *daemon) podURL(args ...string) podURL {
	d.t.Helper()
	r := d.cli(append([]string{"pod", "url"}, append(args, "-o", "json")...)...)
	var u podURL
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &u) != nil || u.URL == "" {
		d.t.Fatalf("pod url %v: exit %d: %s %s", args, r.code, r.stdout, r.stderr)
	}
	return u
}

// termEcho runs a command in the web terminal over c and waits for want.
func termEcho(ctx context.Context, t *testing.T, c *websocket.Conn, cmd, want string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageBinary, []byte(cmd+"\n")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for !strings.Contains(out.String(), want) {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading the terminal: %v; so far %q", err, out.String())
		}
		if typ == websocket.MessageBinary {
			out.Write(b)
		}
	}
}

// TestGatewayAuth: the gateway in front of a real pod's web app and web
// terminal: 401 and refused WebSockets without a link; a link's cookie
// opens HTTP and the terminal; expired, tampered, revoked and deleted
// pods' links fail; a Host for another pod or domain fails.
func TestGatewayAuth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	d := startDaemonWith(t, func(cfg string) string { return cfg + fmt.Sprintf("metricsAddr: %q\n", metricsAddr) }, nil)
	if r := d.cli("pod", "create", "--template", "minimal", "--name", "gw", "-o", "json"); r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	other, r := d.create(webSpec("gw-other", ""))
	if r.code != 0 {
		t.Fatalf("create other: %s", r.stderr)
	}
	p, _ := d.get("gw")
	gwURL := map[string]string{}
	for _, port := range p.Ports {
		gwURL[port.Name] = port.Gateway
	}
	if want := fmt.Sprintf("http://terminal-%s.localhost:%d/", p.ID, d.gwPort); gwURL["terminal"] != want {
		t.Fatalf("pod view gateway URL %q, want %q", gwURL["terminal"], want)
	}
	c := newGWClient(t, d.gwPort)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// No link: 401 with the way to get one, for HTTP and WebSocket.
	if code, body := c.get(gwURL["terminal"]); code != 401 || !strings.Contains(body, "pod url "+p.ID+" terminal") || strings.Contains(body, "xterm") {
		t.Fatalf("no cookie: %d %q", code, body)
	}
	if _, resp, err := c.ws(ctx, gwURL["terminal"], ""); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("WebSocket without a cookie: %v %v, want refused with 401", resp, err)
	}

	// The terminal's raw host port (loopback) wants the pod's token, which
	// only the gateway adds: without it, 401.
	for _, port := range p.Ports {
		if port.Name == "terminal" {
			if _, err := httpGet(port.URL+"/", 5*time.Second); err == nil || !strings.Contains(err.Error(), "401") {
				t.Errorf("raw terminal port without the token: %v, want 401", err)
			}
		}
	}

	// A link: the terminal page, then a shell over the WebSocket.
	link := d.podURL("gw", "terminal", "--ttl", "1h")
	if code, body := c.get(link.URL); code != 200 || !strings.Contains(body, "xterm") {
		t.Fatalf("terminal through the link: %d", code)
	}
	termCookie := c.cookie(gwURL["terminal"])
	ws, _, err := c.ws(ctx, gwURL["terminal"], termCookie)
	if err != nil {
		t.Fatalf("terminal WebSocket with the cookie: %v", err)
	}
	termEcho(ctx, t, ws, "echo via=gateway-$(hostname)", "via=gateway-gw")
	ws.Close(websocket.StatusNormalClosure, "")
	appLink := d.podURL("gw") // the first port: app
	if appLink.Port != "app" {
		t.Errorf("default port %q, want app", appLink.Port)
	}
	if code, body := c.get(appLink.URL + "&next=/index.html"); code != 200 || !strings.Contains(body, "Hello from pinacle") {
		t.Fatalf("app through the link: %d %q", code, body)
	}

	// The terminal's cookie for another pod's host, or another domain.
	otherHost := fmt.Sprintf("web-%s.localhost:%d", other.ID, d.gwPort)
	if code, _ := c.get("http://"+otherHost+"/", "Cookie", termCookie); code != 401 {
		t.Errorf("terminal cookie on another pod's host: %d, want 401", code)
	}
	// ... or for another port of the same pod.
	if code, body := newGWClient(t, d.gwPort).get(gwURL["app"], "Cookie", termCookie); code != 401 || strings.Contains(body, "Hello from pinacle") {
		t.Errorf("terminal cookie on the same pod's app host: %d, want 401", code)
	}
	for _, host := range []string{fmt.Sprintf("terminal-%s.evil.example:%d", p.ID, d.gwPort), fmt.Sprintf("127.0.0.1:%d", d.gwPort)} {
		if code, body := c.get(gwURL["terminal"], "Host", host, "Cookie", termCookie); code != 421 || strings.Contains(body, "xterm") {
			t.Errorf("Host %s: %d, want 421", host, code)
		}
	}

	// Tampered and expired links.
	tampered := []byte(link.URL)
	tampered[len(tampered)-5] ^= 1
	if code, _ := newGWClient(t, d.gwPort).get(string(tampered)); code != 401 {
		t.Errorf("tampered link: %d, want 401", code)
	}
	short := d.podURL("gw", "app", "--ttl", "2s")
	sc := newGWClient(t, d.gwPort)
	poll(t, 15*time.Second, "a 2s link to expire", func() bool {
		code, _ := sc.get(short.URL)
		return code == 401
	})

	// Revoke: the terminal's cookie stops working; a new link works.
	if r := d.cli("pod", "url", "gw", "--revoke"); r.code != 0 {
		t.Fatalf("revoke: %s", r.stderr)
	}
	if code, _ := c.get(gwURL["terminal"], "Cookie", termCookie); code != 401 {
		t.Errorf("cookie after revoke: %d, want 401", code)
	}
	if _, resp, err := c.ws(ctx, gwURL["terminal"], termCookie); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("WebSocket after revoke: %v %v, want 401", resp, err)
	}
	if code, _ := newGWClient(t, d.gwPort).get(d.podURL("gw", "terminal").URL); code != 200 {
		t.Errorf("a new link after revoke: %d", code)
	}

	// Deleting a pod revokes its links.
	otherLink := d.podURL(other.ID, "web")
	if code, _ := newGWClient(t, d.gwPort).get(otherLink.URL + "&next=/index.html"); code != 200 {
		t.Fatalf("other pod through its link: %d", code)
	}
	if r := d.cli("pod", "delete", other.ID); r.code != 0 {
		t.Fatalf("delete: %s", r.stderr)
	}
	if code, _ := newGWClient(t, d.gwPort).get(otherLink.URL); code != 401 {
		t.Errorf("a deleted pod's link: %d, want 401", code)
	}

	// The gateway's metrics are on the node's endpoint.
	body, err := httpGet("http://"+metricsAddr+"/metrics", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`pinacle_gateway_requests_total\{result="unauthorized"\} [1-9]`, `pinacle_gateway_requests_total\{result="proxied"\} [1-9]`,
		`pinacle_gateway_upgrades_total [1-9]`, `pinacle_gateway_requests_total\{result="bad_host"\} [1-9]`} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("metrics lack %s", re)
		}
	}
}
