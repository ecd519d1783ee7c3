package webterm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestEcho(t *testing.T) {
	s := startServer(t)
	cl := mustDial(t, s, "")
	hello := cl.waitControl(TypeHello)
	if hello.Pid <= 0 || hello.Shell != testShell {
		t.Errorf("hello = %+v", hello)
	}
	// The computed marker is not in the echoed input, only in the output.
	cl.send("echo hi-$((40+2))\n")
	cl.waitOutput("hi-42")
}

func TestShellEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, WithDir(dir), WithEnv([]string{"PATH=/usr/bin:/bin", "TERM=dumb", "PINACLE_X=fromenv"}))
	cl := mustDial(t, s, "")
	cl.send("echo \"T=$TERM X=$PINACLE_X D=$(pwd)\" | tr = :\n")
	cl.waitOutput("T:xterm-256color X:fromenv D:" + dir)
}

func TestResize(t *testing.T) {
	s := startServer(t)
	cl := mustDial(t, s, "?cols=90&rows=30")
	cl.waitControl(TypeHello)
	cl.send("stty size | tr ' ' x\n")
	cl.waitOutput("30x90")
	cl.sendControl(Control{Type: TypeResize, Cols: 132, Rows: 43})
	cl.send("stty size | tr ' ' x\n")
	cl.waitOutput("43x132")
	// Nonsense sizes are ignored, the session goes on.
	cl.sendControl(Control{Type: TypeResize, Cols: 0, Rows: 1 << 20})
	cl.send("stty size | tr ' ' y\n")
	cl.waitOutput("43y132")
}

func TestExitCode(t *testing.T) {
	s := startServer(t)
	cl := mustDial(t, s, "")
	hello := cl.waitControl(TypeHello)
	cl.send("echo bye-$((1+1)); exit 3\n")
	m := cl.waitControl(TypeExit)
	if m.Code == nil || *m.Code != 3 || m.Signal != "" {
		t.Errorf("exit frame = %+v, want code 3", m)
	}
	// Output written just before the exit arrives before the exit frame.
	if !strings.Contains(cl.output(), "bye-2") {
		t.Errorf("output before exit lost: %q", cl.output())
	}
	err := cl.waitClosed()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "exit 3" {
		t.Errorf("close = %v, want normal closure \"exit 3\"", err)
	}
	poll(t, 10*time.Second, "shell gone", func() bool { return gone(hello.Pid) })
	poll(t, 10*time.Second, "session slot freed", func() bool { return s.h.Sessions() == 0 })
}

func TestExitBySignal(t *testing.T) {
	s := startServer(t)
	cl := mustDial(t, s, "")
	cl.waitControl(TypeHello)
	cl.send("kill -9 $$\n")
	m := cl.waitControl(TypeExit)
	if m.Code == nil || *m.Code != 137 || m.Signal != "SIGKILL" {
		t.Errorf("exit frame = %+v, want 137 SIGKILL", m)
	}
}

func TestDisconnectKillsShell(t *testing.T) {
	s := startServer(t)
	cl := mustDial(t, s, "")
	hello := cl.waitControl(TypeHello)
	// A foreground child of the shell, in its own process group (job
	// control): the hangup must reach it too.
	cl.send("sh -c 'echo child=$$.; exec sleep 300'\n")
	var child int
	re := regexp.MustCompile(`child=(\d+)\.`)
	poll(t, 10*time.Second, "the child's pid", func() bool {
		m := re.FindStringSubmatch(cl.output())
		if m != nil {
			child, _ = strconv.Atoi(m[1])
		}
		return m != nil
	})
	if gone(hello.Pid) || gone(child) {
		t.Fatal("shell or child not running before the disconnect")
	}
	_ = cl.c.CloseNow() // the tab closes: no close handshake
	poll(t, 10*time.Second, "shell gone", func() bool { return gone(hello.Pid) })
	poll(t, 10*time.Second, "foreground child gone", func() bool { return gone(child) })
	poll(t, 10*time.Second, "session slot freed", func() bool { return s.h.Sessions() == 0 })
}

func TestShellIgnoringHangupIsKilled(t *testing.T) {
	s := startServer(t, WithHangupGrace(200*time.Millisecond))
	cl := mustDial(t, s, "")
	hello := cl.waitControl(TypeHello)
	cl.send("trap '' HUP; echo trapped-$((2*3))\n")
	cl.waitOutput("trapped-6")
	_ = cl.c.CloseNow()
	poll(t, 10*time.Second, "shell killed after the grace period", func() bool { return gone(hello.Pid) })
}

func TestConcurrentSessions(t *testing.T) {
	s := startServer(t)
	a, b := mustDial(t, s, ""), mustDial(t, s, "")
	ha, hb := a.waitControl(TypeHello), b.waitControl(TypeHello)
	if ha.Pid == hb.Pid {
		t.Fatalf("both sessions on pid %d", ha.Pid)
	}
	a.send("V=alpha; echo a-is-${V:-unset}-$((1))\n")
	a.waitOutput("a-is-alpha-1")
	b.send("echo b-is-${V:-unset}-$((2))\n")
	b.waitOutput("b-is-unset-2")
	if s.h.Sessions() != 2 {
		t.Errorf("Sessions() = %d, want 2", s.h.Sessions())
	}
	// One session ending leaves the other alone.
	a.send("exit 0\n")
	a.waitControl(TypeExit)
	b.send("echo still-$((3))\n")
	b.waitOutput("still-3")
	if gone(hb.Pid) {
		t.Error("b's shell died with a's")
	}
}

func TestOrigin(t *testing.T) {
	s := startServer(t, WithAllowedOrigins("*.example.com"))
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{"http://" + s.addr, true},
		{"http://app.example.com", true},
		{"http://evil.example.org", false},
		{"http://127.0.0.1:1", false}, // another port is another origin's host
		{"null", false},
	} {
		hdr := http.Header{}
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		cl, resp, err := dial(t, s, "", hdr)
		if tc.ok {
			if err != nil {
				t.Errorf("origin %q: %v", tc.origin, err)
				continue
			}
			cl.waitControl(TypeHello)
			_ = cl.c.CloseNow()
			continue
		}
		if err == nil {
			t.Errorf("origin %q: accepted", tc.origin)
			_ = cl.c.CloseNow()
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: %v, want 403", tc.origin, err)
		}
	}
}

func TestToken(t *testing.T) {
	s := startServer(t, WithToken("s3cret"))
	get := func(path string) (int, string) {
		resp, err := http.Get(s.url("http", path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/"); code != http.StatusUnauthorized {
		t.Errorf("page without token: %d", code)
	}
	if code, _ := get("/?token=wrong"); code != http.StatusUnauthorized {
		t.Errorf("page with a wrong token: %d", code)
	}
	if code, body := get("/?token=s3cret"); code != http.StatusOK || !strings.Contains(body, "xterm.js") {
		t.Errorf("page with the token: %d", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz needs no token: %d", code)
	}
	for _, q := range []string{"", "?token=wrong", "?token="} {
		if _, resp, err := dial(t, s, q, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("ws %q: %v, want 401", q, err)
		}
	}
	cl := mustDial(t, s, "?token=s3cret")
	cl.waitControl(TypeHello)
	// Clients that are not browsers may send a bearer token.
	cl2, _, err := dial(t, s, "", http.Header{"Authorization": {"Bearer s3cret"}})
	if err != nil {
		t.Fatalf("bearer: %v", err)
	}
	cl2.waitControl(TypeHello)
}

func TestHealthzAndAssets(t *testing.T) {
	s := startServer(t)
	resp, err := http.Get(s.url("http", "/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, b)
	}

	resp, err = http.Get(s.url("http", "/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'self'") {
		t.Errorf("page: %d %v", resp.StatusCode, resp.Header)
	}
	for _, a := range []string{"xterm.js", "xterm.css", "addon-fit.js", "app.js", "LICENSE.xterm"} {
		resp, err := http.Get(s.url("http", "/assets/"+a))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n == 0 || resp.Header.Get("ETag") == "" {
			t.Errorf("%s: %d, %d bytes, etag %q", a, resp.StatusCode, n, resp.Header.Get("ETag"))
			continue
		}
		req, _ := http.NewRequest("GET", s.url("http", "/assets/"+a), nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		resp2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its etag: %d", a, resp2.StatusCode)
		}
	}
	for _, p := range []string{"/assets/", "/assets/../webterm.go", "/assets/README.md", "/nope"} {
		resp, err := http.Get(s.url("http", p))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestBadRequests(t *testing.T) {
	s := startServer(t, WithMaxSessions(1))
	if _, resp, err := dial(t, s, "?cols=0&rows=10", nil); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad size: %v", err)
	}
	cl := mustDial(t, s, "")
	cl.waitControl(TypeHello)
	if _, resp, err := dial(t, s, "", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("over the session cap: %v", err)
	}
}

func TestServeStopHangsUp(t *testing.T) {
	s := startServer(t)
	cl := mustDial(t, s, "")
	hello := cl.waitControl(TypeHello)
	s.stop()
	var ce websocket.CloseError
	if err := cl.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Errorf("close = %v, want going away", err)
	}
	if !gone(hello.Pid) {
		t.Errorf("shell %d survived the server", hello.Pid)
	}
	if _, _, err := dial(t, s, "", nil); err == nil {
		t.Error("dial after stop succeeded")
	}
}

func TestShellStartFailure(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, WithDir(dir))
	// The directory vanishes after the server started.
	if err := removeDir(dir); err != nil {
		t.Fatal(err)
	}
	cl := mustDial(t, s, "")
	m := cl.waitControl(TypeError)
	if !strings.Contains(m.Message, "start shell") {
		t.Errorf("error frame = %+v", m)
	}
	var ce websocket.CloseError
	if err := cl.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.StatusInternalError {
		t.Errorf("close = %v, want 1011", err)
	}
}

func TestOptions(t *testing.T) {
	for name, o := range map[string]Option{
		"relative shell": WithShell("sh"),
		"missing shell":  WithShell("/nonexistent/sh"),
		"dir as shell":   WithShell("/"),
		"relative dir":   WithDir("tmp"),
		"missing dir":    WithDir("/nonexistent"),
		"file as dir":    WithDir("/bin/sh"),
		"empty token":    WithToken(""),
		"any origin":     WithAllowedOrigins("*"),
		"bad pattern":    WithAllowedOrigins("[a"),
		"zero sessions":  WithMaxSessions(0),
		"zero grace":     WithHangupGrace(0),
		"zero ping":      WithPingInterval(0),
		"nil logger":     WithLogger(nil),
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s: %v is not classified", name, err)
		}
	}
}

func TestLoginShellArgv0(t *testing.T) {
	s := startServer(t, WithLogin(true))
	cl := mustDial(t, s, "")
	cl.waitControl(TypeHello)
	// A login shell's $0 starts with '-'.
	cl.send("case $0 in -*) echo login-$((7));; *) echo nologin-$((7));; esac\n")
	cl.waitOutput("login-7")
	if strings.Contains(cl.output(), "nologin-7") {
		t.Error("not a login shell")
	}
}

func TestKeepalive(t *testing.T) {
	s := startServer(t, WithPingInterval(20*time.Millisecond))
	cl := mustDial(t, s, "")
	cl.waitControl(TypeHello)
	// The client's reader answers pings: many intervals later the session
	// still works.
	time.Sleep(200 * time.Millisecond)
	cl.send("echo alive-$((5))\n")
	cl.waitOutput("alive-5")
	// A client that stops reading does not answer pings; it is dropped
	// and its shell hung up.
	raw, _, err := websocket.Dial(context.Background(), s.url("ws", "/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.CloseNow()
	poll(t, 10*time.Second, "silent client dropped", func() bool { return s.h.Sessions() == 1 })
}

func TestLargePaste(t *testing.T) {
	s := startServer(t)
	cl := mustDial(t, s, "")
	cl.waitControl(TypeHello)
	cl.send("wc -c | tr -d ' ' | sed 's/^/count=/'\n")
	// 300 KB in one message, in lines the terminal's line editing takes
	// whole (shorter than its 4 KB line buffer).
	line := strings.Repeat("a", 99) + "\n"
	cl.send(strings.Repeat(line, 3000))
	cl.send("\x04") // ^D: end of input for wc
	cl.waitOutput("count=300000")
}
