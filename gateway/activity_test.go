package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// credits records what an exchange credited to its pod.
type credits struct {
	mu    sync.Mutex
	calls int
	bytes int64
}

func (c *credits) add(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.bytes += n
}

func (c *credits) get() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.bytes
}

// A WebSocket in use is credited while it lasts, once an interval has
// passed (the test's clock), not only when it opened; and its bytes both
// ways are all credited by the time it closes.
func TestActivityCreditsLongWebSocket(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "term", wsEcho())
	var cr credits
	e.mu.Lock()
	e.extras[testPod+"/term"] = Backend{Activity: cr.add}
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok := mustURL(e.link(t, testPod, "term", time.Hour).URL).Query().Get("token")
	c, _, err := e.wsDial(ctx, "http://term-"+testPod+".localhost/", http.Header{"Cookie": {CookieName + "=" + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	msg := strings.Repeat("k", 1000)
	echo := func() {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, b, err := c.Read(ctx); err != nil || string(b) != msg {
			t.Fatalf("echo: %d bytes, %v", len(b), err)
		}
	}
	echo() // within the first interval: counted, not yet credited
	if n, _ := cr.get(); n != 0 {
		t.Fatalf("%d credits within the first interval, want 0 (the open was counted by Resolve)", n)
	}
	const rounds = 5
	for range rounds { // a user typing for minutes
		e.clk.add(activityEvery)
		echo()
	}
	calls, during := cr.get()
	if calls < rounds || during < rounds*int64(len(msg)) {
		t.Fatalf("while open: %d credits of %d bytes over %d intervals, want one per interval with the bytes moved", calls, during, rounds)
	}
	c.Close(websocket.StatusNormalClosure, "")
	// Both directions of all 1+rounds echoes, frames included, by the end.
	want := int64(2 * (1 + rounds) * len(msg))
	deadline := time.Now().Add(10 * time.Second)
	for _, b := cr.get(); b < want; _, b = cr.get() {
		if time.Now().After(deadline) {
			t.Fatalf("credited %d bytes after close, want at least %d", b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A plain request's bodies are credited when it ends; a request that
// moves no bytes credits nothing.
func TestActivityCreditsBodies(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "app", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if n == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(w, strings.Repeat("r", 3000))
	}))
	var cr credits
	e.mu.Lock()
	e.extras[testPod+"/app"] = Backend{Activity: cr.add}
	e.mu.Unlock()
	c := e.client(t)
	get(t, c, e.link(t, testPod, "app", time.Hour).URL)
	calls0, _ := cr.get()
	resp, err := c.Post("http://app-"+testPod+".localhost/", "text/plain", strings.NewReader(strings.Repeat("u", 5000)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for _, b := cr.get(); b < 8000; _, b = cr.get() {
		if time.Now().After(deadline) {
			t.Fatalf("credited %d bytes for a 5000-byte upload and a 3000-byte answer", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if calls, _ := cr.get(); calls != calls0+1 {
		t.Errorf("%d credits for one short request, want 1 (at its end)", calls-calls0)
	}
}

// The resolver's cookies reach the backend in place of any the client
// sent under the same name; the client's other cookies pass, the
// gateway's own does not.
func TestBackendCookies(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "code", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got []string
		for _, c := range r.Cookies() {
			got = append(got, c.Name+"="+c.Value)
		}
		io.WriteString(w, strings.Join(got, " "))
	}))
	e.mu.Lock()
	e.extras[testPod+"/code"] = Backend{Cookies: []*http.Cookie{{Name: "code-server-session", Value: "node-secret"}}}
	e.mu.Unlock()
	l := e.link(t, testPod, "code", time.Hour)
	c := e.client(t)
	if resp, body := get(t, c, l.URL); resp.StatusCode != 200 || body != "code-server-session=node-secret" {
		t.Errorf("after the link the backend saw cookies %q (%d), want only the node's", body, resp.StatusCode)
	}
	if _, body := get(t, c, l.Host, "Cookie", "theme=dark; code-server-session=client-guess"); body != "theme=dark code-server-session=node-secret" {
		t.Errorf("backend saw cookies %q, want the client's theme and the node's session", body)
	}
}

// A request that woke its pod is served once the pod listens, though it
// refused at first (right after a restore), not answered 502; a request
// that did not wake it is not retried.
func TestWokenPodRefusingAtFirst(t *testing.T) {
	e := newEnv(t)
	// Its own loopback address: a port freed here cannot be taken by a
	// parallel test's listener on 127.0.0.1.
	ln, err := net.Listen("tcp", "127.0.77.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e.mu.Lock()
	e.routes[testPod+"/app"] = addr
	e.mu.Unlock()
	c := e.client(t)
	l := e.link(t, testPod, "app", time.Hour)
	if resp, _ := get(t, c, l.URL); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a refusing pod that was not woken: %d, want 502 at once", resp.StatusCode)
	}
	e.mu.Lock()
	e.extras[testPod+"/app"] = Backend{Woken: true}
	e.mu.Unlock()
	listening := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			close(listening)
			return
		}
		close(listening)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "awake") })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}()
	resp, body := get(t, c, l.Host)
	<-listening
	if resp.StatusCode != 200 || body != "awake" {
		t.Fatalf("a woken pod that refused at first: %d %q, want served", resp.StatusCode, body)
	}
}
