package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestRotatingWriter(t *testing.T) {
	dir := t.TempDir()
	w, err := newRotatingWriter(dir, "svc", 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		fmt.Fprintf(w, "line %02d\n", i) // 8 bytes each
	}
	w.Write(bytes.Repeat([]byte("x"), 250)) // one line longer than the cap
	w.Write([]byte("\nend\n"))
	w.Close()
	for _, p := range []string{"svc.log", "svc.log.1", "svc.log.2"} {
		st, err := os.Stat(dir + "/" + p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if st.Size() > 100 {
			t.Errorf("%s is %d bytes, over the 100-byte cap", p, st.Size())
		}
	}
	if _, err := os.Stat(dir + "/svc.log.3"); err == nil {
		t.Errorf("svc.log.3 exists: more rotated files than logMaxFiles")
	}
	lines, err := TailLogs(dir, "svc", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[2] != "end" || !strings.HasPrefix(lines[0], "xxx") {
		t.Errorf("tail 3 = %q", lines)
	}
}

func TestServiceLogsRotateAtCap(t *testing.T) {
	chatty := svc("chatty", sh(`i=0; while [ $i -lt 2000 ]; do echo "out line $i"; echo "err line $i" >&2; i=$((i+1)); done; echo done; exec sleep 1000`))
	cfg := testConfig(t, chatty)
	cfg.LogMaxBytes, cfg.LogMaxFiles = 4096, 3
	s := startSupervisor(t, cfg)
	_ = s
	poll(t, 20*time.Second, func() (bool, string) {
		l, err := TailLogs(cfg.LogDir, "chatty", 1)
		return err == nil && len(l) == 1 && l[0] == "done", fmt.Sprintf("last line %q %v", l, err)
	})
	for i, p := range []string{"", ".1", ".2", ".3"} {
		st, err := os.Stat(LogPath(cfg.LogDir, "chatty") + p)
		if err != nil {
			t.Fatalf("log%s: %v", p, err)
		}
		if st.Size() > 4096 || (i > 0 && st.Size() < 4000) {
			t.Errorf("log%s is %d bytes, cap 4096", p, st.Size())
		}
	}
	if _, err := os.Stat(LogPath(cfg.LogDir, "chatty") + ".4"); err == nil {
		t.Errorf(".log.4 exists")
	}
	lines, _ := TailLogs(cfg.LogDir, "chatty", 5)
	want := []string{"out line 1998", "err line 1998", "out line 1999", "err line 1999", "done"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("stdout and stderr not interleaved in order: %q", lines)
	}
	if _, err := TailLogs(cfg.LogDir, "nope", 1); !errdefs.IsNotFound(err) {
		t.Errorf("TailLogs(nope) = %v, want not found", err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFollowLogsAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	w, err := newRotatingWriter(dir, "f", 1024, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuf
	done := make(chan error, 1)
	go func() { done <- FollowLogs(ctx, dir, "f", &out) }()
	// Bursts of ~5 rotations between two polls: the follower must read the
	// rotated files it skipped over.
	var want strings.Builder
	want.WriteString("first\n")
	w.Write([]byte("first\n"))
	poll(t, 10*time.Second, func() (bool, string) { return out.String() == "first\n", "follower has not started" })
	for i := range 900 {
		line := fmt.Sprintf("follow line %04d\n", i)
		want.WriteString(line)
		w.Write([]byte(line))
		if i%300 == 299 {
			time.Sleep(3 * FollowPollInterval)
		}
	}
	poll(t, 10*time.Second, func() (bool, string) {
		return out.String() == want.String(), fmt.Sprintf("followed %d of %d bytes", len(out.String()), want.Len())
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFollowLogsFromOffset(t *testing.T) {
	dir := t.TempDir()
	path := LogPath(dir, "svc")
	if err := os.WriteFile(path, []byte("old 1\nold 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- FollowLogsFrom(ctx, dir, "svc", int64(len("old 1\n")), writerFunc(func(b []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return out.Write(b)
		}))
	}()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new 3\n")
	f.Close()
	want := "old 2\nnew 3\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := out.String()
		mu.Unlock()
		if got == want {
			break
		}
		if time.Now().After(deadline) || len(got) > len(want) {
			t.Fatalf("followed %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
