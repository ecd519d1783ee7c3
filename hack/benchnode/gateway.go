package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/podspec"
)

// gatewayPort is mainNet's gateway.port.
const gatewayPort = 44990

// runGateway measures the gateway against the host port of the same pod
// (kernel path), interleaved in one run: a small GET's latency, the
// throughput of a 256 MiB file, the web terminal's keystroke echo over a
// WebSocket, and new connections per second.
func runGateway(bin string) error {
	return withNode(bin, func(nd *node) error {
		ctx := context.Background()
		req := plain("gwbench")
		req.Spec.Network.Ports = []podspec.Port{{Name: "web", Internal: 9000}, {Name: "term", Internal: 3003}}
		req.Spec.Services = []podspec.Service{
			{Name: "web", Command: []string{"sh", "-c", "mkdir -p /srv && echo hi > /srv/small && dd if=/dev/zero of=/srv/blob bs=1M count=0 seek=256 2>/dev/null && exec httpd -f -p 9000 -h /srv"},
				HealthCheck: &podspec.HealthCheck{Type: podspec.HealthTCP, Port: 9000}},
			{Name: "term", Command: []string{"/.pinacle/bin/pinacle-node", "webterm", "--port", "3003"},
				HealthCheck: &podspec.HealthCheck{Type: podspec.HealthTCP, Port: 3003}},
		}
		p, err := nd.client.Create(ctx, req)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		direct := map[string]target{}
		gw := map[string]target{}
		for _, port := range p.Ports {
			u, err := nd.client.URL(ctx, p.ID, api.URLRequest{Port: port.Name})
			if err != nil {
				return err
			}
			tok, _ := url.Parse(u.URL)
			direct[port.Name] = newTarget(fmt.Sprintf("http://127.0.0.1:%d/", port.External), "", fmt.Sprintf("127.0.0.1:%d", port.External))
			if port.Name == "term" { // the raw port wants the pod's web terminal token
				b, err := os.ReadFile(filepath.Join(nd.dir, "data", "pods", p.ID, "config", "webterm.token"))
				if err != nil {
					return err
				}
				t := direct["term"]
				t.bearer = strings.TrimSpace(string(b))
				direct["term"] = t
			}
			gw[port.Name] = newTarget(u.Host, "pinacle_gw="+tok.Query().Get("token"), fmt.Sprintf("127.0.0.1:%d", gatewayPort))
		}
		return gatewayFigures(ctx, direct, gw)
	})
}

func gatewayFigures(ctx context.Context, direct, gw map[string]target) error {
	var dl, gl []time.Duration
	for range 5 {
		d, err := direct["term"].latencies(200)
		if err != nil {
			return err
		}
		g, err := gw["term"].latencies(200)
		if err != nil {
			return err
		}
		dl, gl = append(dl, d...), append(gl, g...)
	}
	// The web terminal's /healthz: a Go server in the sandbox, keep-alive,
	// no process per request (busybox httpd forks one, which in gVisor
	// costs more than everything measured here).
	fmt.Printf("gateway-bench: GET /healthz of the web terminal in a pod, p50: host port %s, gateway %s, added %s (target <= 1ms)\n",
		pct(dl, 50), pct(gl, 50), pct(gl, 50)-pct(dl, 50))
	var dt, gt []float64
	for range 3 {
		d, err := direct["web"].throughput("blob", 256<<20)
		if err != nil {
			return err
		}
		g, err := gw["web"].throughput("blob", 256<<20)
		if err != nil {
			return err
		}
		dt, gt = append(dt, d), append(gt, g)
	}
	dm, gm := medianF(dt), medianF(gt)
	fmt.Printf("gateway-bench: 256 MiB from a pod, median of 3: host port %.0f MB/s, gateway %.0f MB/s, ratio %.2f (target >= 0.8)\n", dm, gm, gm/dm)
	de, err := direct["term"].echo(ctx, 200)
	if err != nil {
		return err
	}
	ge, err := gw["term"].echo(ctx, 200)
	if err != nil {
		return err
	}
	fmt.Printf("gateway-bench: web terminal keystroke echo over WebSocket, p50: host port %s, gateway %s\n", pct(de, 50), pct(ge, 50))
	dr, derr := direct["term"].connRate(1000, 16)
	gr, gerr := gw["term"].connRate(1000, 16)
	fmt.Printf("gateway-bench: new connection per request, 16 at once: host port %.0f/s (%d errors), gateway %.0f/s (%d errors)\n", dr, derr, gr, gerr)
	return nil
}

// target is one way to a pod port: its base URL, the cookie it needs and
// the address every connection goes to (the gateway's for *.localhost).
type target struct {
	base, cookie, addr string
	bearer             string // Authorization: Bearer, for the raw web terminal port
}

func newTarget(base, cookie, addr string) target {
	return target{base: base, cookie: cookie, addr: addr}
}

func (t target) client(keepAlive bool) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: !keepAlive,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", t.addr)
		}}}
}

func (t target) get(c *http.Client, path string) (int64, error) {
	req, _ := http.NewRequest("GET", t.base+path, nil)
	if t.cookie != "" {
		req.Header.Set("Cookie", t.cookie)
	}
	if t.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+t.bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %d", t.base+path, resp.StatusCode)
	}
	return n, err
}

func (t target) latencies(n int) ([]time.Duration, error) {
	c := t.client(true)
	var ds []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := t.get(c, "healthz"); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}

func (t target) throughput(path string, size int64) (float64, error) {
	t0 := time.Now()
	n, err := t.get(t.client(true), path)
	if err != nil || n != size {
		return 0, fmt.Errorf("GET %s: %d bytes, %v", path, n, err)
	}
	return float64(n) / time.Since(t0).Seconds() / 1e6, nil
}

// echo types one character at a time into the web terminal and times
// its echo.
func (t target) echo(ctx context.Context, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hdr := http.Header{}
	if t.cookie != "" {
		hdr.Set("Cookie", t.cookie)
	}
	if t.bearer != "" {
		hdr.Set("Authorization", "Bearer "+t.bearer)
	}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(t.base, "http")+"ws?cols=80&rows=24",
		&websocket.DialOptions{HTTPClient: t.client(true), HTTPHeader: hdr})
	if err != nil {
		return nil, err
	}
	defer c.CloseNow()
	readUntil := func(want string) error {
		var got strings.Builder
		for !strings.Contains(got.String(), want) {
			_, b, err := c.Read(ctx)
			if err != nil {
				return err
			}
			got.Write(b)
		}
		return nil
	}
	if err := c.Write(ctx, websocket.MessageBinary, []byte("echo ready\n")); err != nil {
		return nil, err
	}
	if err := readUntil("ready\r\n"); err != nil {
		return nil, err
	}
	var ds []time.Duration
	for i := range n {
		ch := string(rune('a' + i%26))
		t0 := time.Now()
		if err := c.Write(ctx, websocket.MessageBinary, []byte(ch)); err != nil {
			return nil, err
		}
		if err := readUntil(ch); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t0))
	}
	return ds, nil
}

func (t target) connRate(n, conc int) (float64, int64) {
	c := t.client(false)
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := t.get(c, "healthz"); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(t0).Seconds(), errs.Load()
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
