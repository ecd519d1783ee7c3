package webterm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/coder/websocket"
)

const testShell = "/bin/sh"

// poll calls f until it returns true or the deadline passes.
func poll(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type testServer struct {
	h    *Handler
	addr string // host:port
	stop func()
}

// startServer serves a Handler on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, opts ...Option) *testServer {
	t.Helper()
	if _, err := os.Stat(testShell); err != nil {
		testenv.Missing(t, "needs %s", testShell)
	}
	opts = append([]Option{WithShell(testShell), WithDir(t.TempDir()), WithHangupGrace(time.Second)}, opts...)
	h, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, ln) }()
	var once sync.Once
	s := &testServer{h: h, addr: ln.Addr().String()}
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Serve did not return")
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) url(scheme, path string) string { return scheme + "://" + s.addr + path }

// client is a websocket client that collects output and control frames.
type client struct {
	t    testing.TB
	c    *websocket.Conn
	mu   sync.Mutex
	out  bytes.Buffer
	ctrl chan Control
	more chan struct{} // a token after each output message
	done chan struct{}
	err  error // the read error that ended the client
}

func dial(t testing.TB, s *testServer, query string, hdr http.Header) (*client, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.url("ws", "/ws"+query), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, resp, err
	}
	cl := &client{t: t, c: c, ctrl: make(chan Control, 16), more: make(chan struct{}, 1), done: make(chan struct{})}
	c.SetReadLimit(1 << 20)
	go cl.read()
	t.Cleanup(func() { _ = c.CloseNow() })
	return cl, resp, nil
}

func mustDial(t testing.TB, s *testServer, query string) *client {
	t.Helper()
	cl, _, err := dial(t, s, query, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return cl
}

func (cl *client) read() {
	defer close(cl.done)
	for {
		typ, b, err := cl.c.Read(context.Background())
		if err != nil {
			cl.mu.Lock()
			cl.err = err
			cl.mu.Unlock()
			return
		}
		if typ == websocket.MessageBinary {
			cl.mu.Lock()
			cl.out.Write(b)
			cl.mu.Unlock()
			select {
			case cl.more <- struct{}{}:
			default:
			}
			continue
		}
		var m Control
		if err := json.Unmarshal(b, &m); err != nil {
			cl.t.Errorf("bad control frame %q: %v", b, err)
			continue
		}
		cl.ctrl <- m
	}
}

func (cl *client) send(s string) {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.c.Write(ctx, websocket.MessageBinary, []byte(s)); err != nil {
		cl.t.Fatalf("send %q: %v", s, err)
	}
}

func (cl *client) sendControl(m Control) {
	cl.t.Helper()
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.c.Write(ctx, websocket.MessageText, b); err != nil {
		cl.t.Fatalf("send control: %v", err)
	}
}

func (cl *client) output() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.out.String()
}

// echo types one character and returns how long until more output came.
func (cl *client) echo() time.Duration {
	cl.t.Helper()
	select {
	case <-cl.more:
	default:
	}
	t0 := time.Now()
	cl.send("x")
	select {
	case <-cl.more:
	case <-time.After(10 * time.Second):
		cl.t.Fatal("no echo")
	}
	return time.Since(t0)
}

// waitOutput waits until the output holds want.
func (cl *client) waitOutput(want string) {
	cl.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(cl.output(), want) {
		if time.Now().After(deadline) {
			cl.t.Fatalf("output never held %q; got:\n%s", want, cl.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitControl returns the next control frame of type typ.
func (cl *client) waitControl(typ string) Control {
	cl.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-cl.ctrl:
			if m.Type == typ {
				return m
			}
		case <-timeout:
			cl.t.Fatalf("no %q control frame; output:\n%s", typ, cl.output())
		}
	}
}

// waitClosed waits for the connection to end and returns the read error.
func (cl *client) waitClosed() error {
	cl.t.Helper()
	select {
	case <-cl.done:
	case <-time.After(10 * time.Second):
		cl.t.Fatal("connection not closed")
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.err
}

// gone says whether pid no longer runs (absent, or a zombie waiting for
// whoever inherited it).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func removeDir(d string) error { return os.Remove(d) }
