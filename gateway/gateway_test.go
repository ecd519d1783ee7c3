package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// seen is what a backend reports about the request it received.
type seen struct {
	Host    string
	Cookie  string
	XFF     string
	XFHost  string
	XFProto string
	Path    string
}

func echoHeaders() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(seen{Host: r.Host, Cookie: r.Header.Get("Cookie"), XFF: r.Header.Get("X-Forwarded-For"),
			XFHost: r.Header.Get("X-Forwarded-Host"), XFProto: r.Header.Get("X-Forwarded-Proto"), Path: r.URL.RequestURI()})
	})
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestNoTokenIs401(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "app", echoHeaders())
	resp, body := get(t, e.client(t), "http://app-"+testPod+".localhost/")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	if !strings.Contains(body, "pinacle-node pod url "+testPod+" app") || strings.Contains(body, "Host") {
		t.Errorf("401 page does not say how to get a link, or shows the service:\n%s", body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
}

func TestLinkSetsCookieAndProxies(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "app", echoHeaders())
	l := e.link(t, testPod, "app", time.Hour)
	if want := "http://app-" + testPod + ".localhost/"; l.Host != want || !strings.HasPrefix(l.URL, want[:len(want)-1]+AuthPath+"?token=") {
		t.Fatalf("link %+v, want host %s", l, want)
	}
	// The link itself: 303 to the clean URL, a host-only HttpOnly Lax cookie.
	nc := e.client(t)
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := get(t, nc, l.URL+"&next=/a/b?c=d")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/a/b?c=d" {
		t.Fatalf("link: %d Location %q, want 303 to /a/b?c=d", resp.StatusCode, resp.Header.Get("Location"))
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{CookieName + "=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(strings.ToLower(sc), "domain=") || strings.Contains(sc, "Secure") {
		t.Errorf("Set-Cookie %q: want host-only and not Secure over http", sc)
	}
	// A browser: follows the redirect, then uses the cookie.
	c := e.client(t)
	resp, body := get(t, c, l.URL)
	if resp.StatusCode != 200 {
		t.Fatalf("after the link: %d %s", resp.StatusCode, body)
	}
	c.Jar.SetCookies(mustURL(l.Host), []*http.Cookie{{Name: "theirs", Value: "1"}})
	resp, body = get(t, c, l.Host+"x?y=1", "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Host", "evil")
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	want := seen{Host: "app-" + testPod + ".localhost", Cookie: "theirs=1", XFF: "127.0.0.1", XFHost: "app-" + testPod + ".localhost", XFProto: "http", Path: "/x?y=1"}
	if s != want {
		t.Errorf("backend saw %+v\nwant       %+v", s, want)
	}
}

func TestBadTokens(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "app", echoHeaders())
	e.backend(t, testPod, "other", echoHeaders())
	e.backend(t, "p99", "app", echoHeaders())
	good := e.link(t, testPod, "app", time.Hour)
	tok := mustURL(good.URL).Query().Get("token")
	tampered := []byte(tok)
	tampered[10] ^= 1
	expired := e.link(t, testPod, "app", time.Minute)
	e.clk.add(2 * time.Minute)
	for name, tc := range map[string]struct{ host, token string }{
		"tampered":     {good.Host, string(tampered)},
		"expired":      {expired.Host, mustURL(expired.URL).Query().Get("token")},
		"another pod":  {"http://app-p99.localhost/", tok},
		"another port": {"http://other-" + testPod + ".localhost/", tok},
		"empty":        {good.Host, ""},
	} {
		c := e.client(t)
		resp, body := get(t, c, strings.TrimSuffix(tc.host, "/")+AuthPath+"?token="+url.QueryEscape(tc.token))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
			t.Errorf("%s link: %d, want 401 naming a bad link", name, resp.StatusCode)
		}
		// The same token as a cookie, set by hand.
		resp, _ = get(t, c, tc.host, "Cookie", CookieName+"="+tc.token)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s cookie: %d, want 401", name, resp.StatusCode)
		}
	}
}

func TestHostChecks(t *testing.T) {
	e := newEnv(t, WithDomain("pods.example.com"))
	e.backend(t, testPod, "app", echoHeaders())
	l := e.link(t, testPod, "app", time.Hour)
	tok := mustURL(l.URL).Query().Get("token")
	c := e.client(t)
	for _, host := range []string{"app-" + testPod + ".localhost", "app-" + testPod + ".pods.example.com.evil.net", "127.0.0.1", "evil.net", "pods.example.com"} {
		resp, body := get(t, c, "http://"+host+"/", "Cookie", CookieName+"="+tok)
		if resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(body, "Forwarded") {
			t.Errorf("Host %s: %d, want 421 without the service", host, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, l.Host, "Cookie", CookieName+"="+tok); resp.StatusCode != 200 {
		t.Errorf("own domain: %d", resp.StatusCode)
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "app", echoHeaders())
	l := e.link(t, testPod, "app", time.Hour)
	c := e.client(t)
	if resp, _ := get(t, c, l.URL); resp.StatusCode != 200 {
		t.Fatalf("link: %d", resp.StatusCode)
	}
	if err := e.gw.Revoke(testPod); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.Revoke(testPod); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if resp, _ := get(t, c, l.Host); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("cookie after revoke: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, e.client(t), l.URL); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("link after revoke: %d, want 401", resp.StatusCode)
	}
	l2 := e.link(t, testPod, "app", time.Hour)
	if resp, _ := get(t, c, l2.URL); resp.StatusCode != 200 {
		t.Errorf("new link after revoke: %d", resp.StatusCode)
	}
	// A restart keeps the key and the epochs: the new link still works,
	// the revoked one still does not.
	e.start(t)
	if resp, _ := get(t, e.client(t), l2.URL); resp.StatusCode != 200 {
		t.Errorf("link after restart: %d", resp.StatusCode)
	}
	if resp, _ := get(t, e.client(t), l.URL); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked link after restart: %d", resp.StatusCode)
	}
	for _, f := range []string{KeyFile, epochsFile} {
		if fi, err := os.Stat(filepath.Join(e.dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", f, fi.Mode(), err)
		}
	}
}

func TestResolveOutcomes(t *testing.T) {
	e := newEnv(t)
	dead := e.backend(t, testPod, "dead", echoHeaders())
	dead.Close()
	for port, want := range map[string]int{"missing": 404, "dead": 502} {
		l := e.link(t, testPod, port, time.Hour)
		if resp, _ := get(t, e.client(t), l.URL); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", port, resp.StatusCode, want)
		}
	}
	e.mu.Lock()
	e.down[testPod] = true
	e.mu.Unlock()
	l := e.link(t, testPod, "dead", time.Hour)
	if resp, _ := get(t, e.client(t), l.URL); resp.StatusCode != 503 {
		t.Errorf("stopped pod: %d, want 503", resp.StatusCode)
	}
}

func TestLinkValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		pod, port string
		ttl       time.Duration
	}{
		{"p-1", "app", 0}, {"P1", "app", 0}, {"p1", "a.b", 0}, {"p1", "", 0}, {"", "app", 0},
		{"p1", "app", -time.Second}, {"p1", "app", 31 * 24 * time.Hour}, {"p1", strings.Repeat("a", 61), 0},
	} {
		if _, err := e.gw.Link(tc.pod, tc.port, tc.ttl); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Link(%q, %q, %s): err = %v, want invalid argument", tc.pod, tc.port, tc.ttl, err)
		}
	}
	l := e.link(t, "p1", "app", 0)
	if d := l.Expires.Sub(e.clk.now()); d < 23*time.Hour || d > 24*time.Hour {
		t.Errorf("default ttl: expires in %s", d)
	}
	for _, o := range []Option{WithDomain("bad domain"), WithURL("ftp", 0), WithTTL(0, time.Hour), WithMaxConns(0, 1), WithLogger(nil)} {
		if _, err := New(t.TempDir(), ResolverFunc(e.resolve), o); !errdefs.IsInvalidArgument(err) {
			t.Errorf("bad option accepted: %v", err)
		}
	}
	g, err := New(t.TempDir(), ResolverFunc(e.resolve), WithURL("https", 443), WithDomain("Pods.Example.com."))
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := g.Link("p1", "app", 0); l.Host != "https://app-p1.pods.example.com/" {
		t.Errorf("https link host %s", l.Host)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// The resolver's headers replace the client's: the node's credential
// for a backend reaches it only through the gateway.
func TestBackendHeader(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "term", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Authorization"))
	}))
	e.mu.Lock()
	e.headers[testPod+"/term"] = http.Header{"Authorization": {"Bearer node-secret"}}
	e.mu.Unlock()
	l := e.link(t, testPod, "term", time.Hour)
	c := e.client(t)
	get(t, c, l.URL)
	if resp, body := get(t, c, l.Host, "Authorization", "Bearer client-guess"); resp.StatusCode != 200 || body != "Bearer node-secret" {
		t.Errorf("backend saw Authorization %q (%d), want the resolver's", body, resp.StatusCode)
	}
}
