package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func wsEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, b); err != nil {
				return
			}
		}
	})
}

func (e *env) wsDial(ctx context.Context, u string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, strings.Replace(u, "http", "ws", 1), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: e.dial}}, HTTPHeader: hdr,
	})
}

func TestWebSocket(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "term", wsEcho())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := e.link(t, testPod, "term", time.Hour)
	if _, resp, err := e.wsDial(ctx, l.Host, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade without a cookie: err %v, resp %v; want refused with 401", err, resp)
	}
	tok := mustURL(l.URL).Query().Get("token")
	c, _, err := e.wsDial(ctx, l.Host, http.Header{"Cookie": {CookieName + "=" + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, b, err := c.Read(ctx); err != nil || string(b) != msg {
			t.Fatalf("echo %q, %v; want %q", b, err, msg)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// Server-sent events reach the client as the backend flushes them, not
// when the response ends.
func TestServerSentEvents(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	e.backend(t, testPod, "sse", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: two\n\n")
	}))
	l := e.link(t, testPod, "sse", time.Hour)
	c := e.client(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get(t, c, l.URL) // the cookie only: the redirect's target would stream
	resp, err := c.Get(l.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	close(release)
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// A large upload streams through (the backend hashes what it gets).
func TestLargeUpload(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "up", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	l := e.link(t, testPod, "up", time.Hour)
	c := e.client(t)
	get(t, c, l.URL)
	const size = 64 << 20
	body := io.LimitReader(zeros{}, size)
	req, _ := http.NewRequest("POST", l.Host, body)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	h := sha256.New()
	io.Copy(h, io.LimitReader(zeros{}, size))
	if want := fmt.Sprintf("%d %s", size, hex.EncodeToString(h.Sum(nil))); string(got) != want {
		t.Fatalf("backend got %q, want %q", got, want)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestConnectionCaps(t *testing.T) {
	e := newEnv(t, WithMaxConns(2, 1))
	block := make(chan struct{})
	e.backend(t, testPod, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	l := e.link(t, testPod, "slow", time.Hour)
	tok := mustURL(l.URL).Query().Get("token")
	// Per pod: one request in flight, the second gets 503.
	first := make(chan int, 1)
	c := &http.Client{Transport: &http.Transport{DialContext: e.dial}}
	go func() {
		req, _ := http.NewRequest("GET", l.Host, nil)
		req.Header.Set("Cookie", CookieName+"="+tok)
		resp, err := c.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	waitFor(t, func() bool { e.gw.mu.Lock(); defer e.gw.mu.Unlock(); return e.gw.inflight[testPod] == 1 })
	resp, _ := get(t, &http.Client{Transport: &http.Transport{DialContext: e.dial}}, l.Host, "Cookie", CookieName+"="+tok)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second request to a pod at its cap: %d, want 503", resp.StatusCode)
	}
	close(block)
	if code := <-first; code != 200 {
		t.Errorf("first request: %d", code)
	}
	// Total: two open connections, the third is closed at once.
	var conns []net.Conn
	for range 2 {
		cn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer cn.Close()
		conns = append(conns, cn)
	}
	waitFor(t, func() bool { return gaugeValue(e.gw.metrics.connsActive) >= 2 })
	cn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	cn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := cn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("connection over the cap: read err %v, want closed", err)
	}
	if counterValue(e.gw.metrics.connsRejected) < 1 {
		t.Error("rejected connection not counted")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
