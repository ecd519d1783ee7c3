package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestGatewayWakesHibernatedPod: requests through the gateway to a
// hibernated pod wake it and are all served (no 5xx) by the same process
// as before, several at once; the gateway dials the pod's IP, not its host
// port, so this is the gateway's own wake, not the forwarder's.
func TestGatewayWakesHibernatedPod(t *testing.T) {
	d := startDaemon(t)
	p, url := counterPod(t, d, "gwwake", "")
	tok, n := count(t, url, 5*time.Second)
	c := newGWClient(t, d.gwPort)
	if code, body := c.get(d.podURL("gwwake", "web").URL + "&next=/index.html"); code != 200 || !strings.HasPrefix(body, tok+" ") {
		t.Fatalf("through the link before hibernate: %d %q, want the counter %s", code, body, tok)
	}
	d.hibernate(t, "gwwake")
	page := fmt.Sprintf("http://web-%s.localhost:%d/index.html", p.ID, d.gwPort)
	cookie := c.cookie(page)
	var wg sync.WaitGroup
	results := make([]string, 5)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", page, nil)
			req.Header.Set("Cookie", cookie)
			resp, err := (&http.Client{Transport: c.http.Transport, Timeout: 90 * time.Second}).Do(req)
			if err != nil {
				results[i] = "error: " + err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			results[i] = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}()
	}
	wg.Wait()
	for i, r := range results {
		f := strings.Fields(r)
		if len(f) != 3 || f[0] != "200" || f[1] != tok {
			t.Errorf("request %d through the gateway to the hibernated pod: %q, want 200 and the counter %s", i, r, tok)
		}
	}
	q, _ := d.get("gwwake")
	if q.State != "running" || q.IP != p.IP {
		t.Errorf("after the gateway's wake: %s at %s, want running at %s", q.State, q.IP, p.IP)
	}
	if tok2, n2 := count(t, url, 5*time.Second); tok2 != tok || n2 < n {
		t.Errorf("after the wake: %s %d, before %s %d (want the same process, counting on)", tok2, n2, tok, n)
	}
	if ev := d.cli("pod", "events", "gwwake", "-o", "json").stdout; !strings.Contains(ev, "Woke") {
		t.Errorf("no Woke event:\n%s", ev)
	}
}

// TestGatewayWebSocketKeepsPodAwake: with a short idle timeout, a web
// terminal in use through the gateway keeps its pod running for many
// times the timeout (its bytes count, not only its opening); once it is
// closed the pod hibernates as idle.
func TestGatewayWebSocketKeepsPodAwake(t *testing.T) {
	const idle = 4 * time.Second
	d := startDaemonWith(t, func(cfg string) string { return cfg + fmt.Sprintf("idleTimeout: %s\n", idle) }, nil)
	if r := d.cli("pod", "create", "--template", "minimal", "--name", "gwidle", "-o", "json"); r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	p, _ := d.get("gwidle")
	c := newGWClient(t, d.gwPort)
	if code, _ := c.get(d.podURL("gwidle", "terminal").URL); code != 200 {
		t.Fatalf("terminal through the link: %d", code)
	}
	base := fmt.Sprintf("http://terminal-%s.localhost:%d/", p.ID, d.gwPort)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ws, _, err := c.ws(ctx, base, c.cookie(base))
	if err != nil {
		t.Fatalf("terminal WebSocket: %v", err)
	}
	defer ws.CloseNow()
	// Type for four idle timeouts, a command every half second.
	for i, end := 0, time.Now().Add(4*idle); time.Now().Before(end); i++ {
		termEcho(ctx, t, ws, fmt.Sprintf("echo tick-$((%d+1))", i), fmt.Sprintf("tick-%d", i+1))
		if q, _ := d.get("gwidle"); q.State != "running" {
			t.Fatalf("after %d commands through the gateway the pod is %s, want running", i+1, q.State)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ev := d.cli("pod", "events", "gwidle", "-o", "json").stdout; strings.Contains(ev, "IdleTimeout") {
		t.Fatalf("an IdleTimeout while the terminal was in use:\n%s", ev)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	poll(t, 60*time.Second, "the pod hibernated once the terminal closed", func() bool {
		q, _ := d.get("gwidle")
		return q.State == "hibernated"
	})
}
