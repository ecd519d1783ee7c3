package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestNodeMinimalTemplateWebTerminal brings up the offline template and
// uses its web terminal (served by the node binary inside the sandbox)
// through the forwarded host port, as a browser would.
func TestNodeMinimalTemplateWebTerminal(t *testing.T) {
	d := startDaemon(t)
	r := d.cli("pod", "create", "--template", "minimal", "--name", "mini", "-o", "json")
	if r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	p, _ := d.get("mini")
	urls := map[string]string{}
	for _, port := range p.Ports {
		urls[port.Name] = port.URL
	}
	if body, err := httpGet(urls["app"]+"/index.html", 5*time.Second); err != nil || !strings.Contains(body, "Hello from pinacle") {
		t.Fatalf("app: %q %v", body, err)
	}
	// The raw host port wants the pod's token (the gateway adds it; see
	// TestGatewayAuth); the node keeps it in the pod's config directory.
	tok, err := os.ReadFile(filepath.Join(d.dir, "data", "pods", p.ID, "config", "webterm.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	if _, err := httpGet(urls["terminal"]+"/", 5*time.Second); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("terminal page without the token: %v, want 401", err)
	}
	if page, err := httpGet(urls["terminal"]+"/?token="+token, 5*time.Second); err != nil || !strings.Contains(page, "xterm") {
		t.Fatalf("terminal page: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(urls["terminal"], "http") + "/ws?cols=80&rows=24&token=" + token
	c, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatalf("websocket %s: %v", wsURL, err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageBinary, []byte("echo pod=$(hostname) cwd=$(pwd)\n")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for !strings.Contains(out.String(), "pod=mini cwd=/workspace") {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading the terminal: %v; so far %q", err, out.String())
		}
		if typ == websocket.MessageBinary {
			out.Write(b)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}
