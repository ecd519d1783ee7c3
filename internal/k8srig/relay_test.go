package k8srig

import (
	"io"
	"net"
	"testing"
	"time"
)

// echo is a TCP server on loopback that copies back what it reads until
// EOF, then closes.
func echo(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

func TestRelayCopiesBothWaysWithHalfClose(t *testing.T) {
	r, err := newRelay("127.0.0.1:0", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("tcp", r.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello through the relay")); err != nil {
		t.Fatal(err)
	}
	// The half-close must reach the server, whose EOF must come back.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello through the relay" {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestRelayCloseEndsOpenConnections(t *testing.T) {
	r, err := newRelay("127.0.0.1:0", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A round trip: the connection is relayed (and tracked) before Close.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a connection open")
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the client's connection did not end cleanly: %v", err)
	}
	if _, err := net.Dial("tcp", r.l.Addr().String()); err == nil {
		t.Fatal("the relay still accepts after Close")
	}
}
