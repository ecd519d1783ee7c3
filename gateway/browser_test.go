package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

// chromium finds a headless browser; without one the test skips (fails
// under CI=true, through testenv).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "no chromium in PATH (apt-get install chromium)")
	return ""
}

// dumpDOM loads url in a fresh headless browser profile and returns the
// document after scripts and redirects.
func dumpDOM(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v", url, err)
	}
	return string(out)
}

// A real browser resolves <port>-<pod>.localhost to loopback, follows the
// link's redirect with the cookie set, and shows the pod's page; a fresh
// profile without the link sees the gateway's sign-in page.
func TestBrowser(t *testing.T) {
	browser := chromium(t)
	e := newEnv(t)
	_, port, _ := net.SplitHostPort(e.addr)
	e.gw.o.urlPort = atoi(port)
	e.backend(t, testPod, "app", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, gw := r.Cookie(CookieName)
		fmt.Fprintf(w, `<!doctype html><p id="pod">hello from the pod, gateway cookie seen: %v</p>`, gw == nil)
	}))
	l := e.link(t, testPod, "app", time.Hour)
	if dom := dumpDOM(t, browser, l.URL); !strings.Contains(dom, "hello from the pod, gateway cookie seen: false") {
		t.Errorf("through the link:\n%s", dom)
	}
	dom := dumpDOM(t, browser, l.Host)
	if !strings.Contains(dom, `<h1 id="title">Sign-in link needed</h1>`) || !strings.Contains(dom, "pinacle-node pod url "+testPod+" app") {
		t.Errorf("without the link:\n%s", dom)
	}
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}
