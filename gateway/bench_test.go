package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkGateway prints the figures make bench reports ("gateway-bench:"
// lines): the gateway against the same backend reached directly, in the
// same run, interleaved. The backend is a loopback HTTP server standing
// in for the pod's host port; run with -benchtime 1x.
func BenchmarkGateway(b *testing.B) {
	e := newEnv(b)
	big := make([]byte, 1<<20)
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { w.Write(big[:64]) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(benchBigSize))
		for n := 0; n < benchBigSize; n += len(big) {
			if _, err := w.Write(big); err != nil {
				return
			}
		}
	})
	mux.Handle("/ws", wsEcho())
	srv := e.backend(b, testPod, "app", mux)
	l := e.link(b, testPod, "app", time.Hour)
	cookie := CookieName + "=" + mustURL(l.URL).Query().Get("token")
	direct := benchTarget{name: "direct", base: srv.URL, dial: (&net.Dialer{}).DialContext}
	gw := benchTarget{name: "gateway", base: l.Host[:len(l.Host)-1], cookie: cookie, dial: e.dial}
	for range b.N {
		dl, gl := latency(b, direct, 2000), latency(b, gw, 2000)
		b.Logf("gateway-bench: 64 B GET p50 direct %v, gateway %v, added %v (p99 %v / %v)", dl[0], gl[0], gl[0]-dl[0], dl[1], gl[1])
		var dt, gt []float64
		for range 3 {
			dt = append(dt, throughput(b, direct))
			gt = append(gt, throughput(b, gw))
		}
		dm, gm := median(dt), median(gt)
		b.Logf("gateway-bench: %d MiB GET, median of 3: direct %.0f MB/s, gateway %.0f MB/s, ratio %.2f", benchBigSize>>20, dm, gm, gm/dm)
		dw, gw2 := wsEchoP50(b, direct, 2000), wsEchoP50(b, gw, 2000)
		b.Logf("gateway-bench: WebSocket 64 B echo p50 direct %v, gateway %v", dw, gw2)
		dr, de := connRate(b, direct, 2000, 16)
		gr, ge := connRate(b, gw, 2000, 16)
		b.Logf("gateway-bench: new connection per request, 16 at once: direct %.0f conns/s (%d errors), gateway %.0f conns/s (%d errors)", dr, de, gr, ge)
	}
}

const benchBigSize = 512 << 20

type benchTarget struct {
	name, base, cookie string
	dial               func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (t benchTarget) client(keepAlive bool) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: t.dial, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 64}}
}

func (t benchTarget) get(c *http.Client, path string) (int64, error) {
	req, _ := http.NewRequest("GET", t.base+path, nil)
	if t.cookie != "" {
		req.Header.Set("Cookie", t.cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("%s: status %d", t.name, resp.StatusCode)
	}
	return n, err
}

// latency returns p50 and p99 of n sequential small GETs on one connection.
func latency(b *testing.B, t benchTarget, n int) [2]time.Duration {
	c := t.client(true)
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := t.get(c, "/small"); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return [2]time.Duration{ds[n/2], ds[n*99/100]}
}

func throughput(b *testing.B, t benchTarget) float64 {
	start := time.Now()
	n, err := t.get(t.client(true), "/big")
	if err != nil || n != benchBigSize {
		b.Fatalf("%s: %d bytes, %v", t.name, n, err)
	}
	return float64(n) / time.Since(start).Seconds() / 1e6
}

func wsEchoP50(b *testing.B, t benchTarget, n int) time.Duration {
	ctx := context.Background()
	hdr := http.Header{}
	if t.cookie != "" {
		hdr.Set("Cookie", t.cookie)
	}
	c, _, err := websocket.Dial(ctx, "ws"+t.base[len("http"):]+"/ws", &websocket.DialOptions{HTTPClient: t.client(true), HTTPHeader: hdr})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	msg := make([]byte, 64)
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[n/2]
}

// connRate makes n requests, each on a new connection, conc at once.
func connRate(b *testing.B, t benchTarget, n, conc int) (float64, int64) {
	c := t.client(false)
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := t.get(c, "/small"); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), errs.Load()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
