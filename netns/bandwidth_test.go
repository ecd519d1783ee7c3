package netns

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// serveBulk answers 'u'+len (read len bytes, then ack one byte) and
// 'd'+len (send len bytes), inside the pod's namespace.
func serveBulk(t *testing.T, nsPath, addr string) {
	t.Helper()
	var l net.Listener
	err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
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
				var hdr [9]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				n := int64(binary.BigEndian.Uint64(hdr[1:]))
				switch hdr[0] {
				case 'u':
					if _, err := io.CopyN(io.Discard, c, n); err == nil {
						c.Write([]byte{1})
					}
				case 'd':
					io.CopyN(c, zeros{}, n)
				}
			}()
		}
	}()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// transfer moves n bytes between the host and the pod and returns the rate
// in bit/s: up = host to pod (the pod's ingress limit), else pod to host
// (egress).
func transfer(t *testing.T, addr string, up bool, n int64) float64 {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	var hdr [9]byte
	hdr[0] = 'd'
	if up {
		hdr[0] = 'u'
	}
	binary.BigEndian.PutUint64(hdr[1:], uint64(n))
	if _, err := c.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if up {
		if _, err := io.CopyN(c, zeros{}, n); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, hdr[:1]); err != nil {
			t.Fatal(err)
		}
	} else if _, err := io.CopyN(io.Discard, c, n); err != nil {
		t.Fatal(err)
	}
	return float64(n*8) / time.Since(start).Seconds()
}

func TestBandwidth(t *testing.T) {
	e := newTestManager(t)
	const rate = 20e6 // bit/s
	a, err := e.m.Setup(context.Background(), Spec{PodID: "slow", Bandwidth: &Bandwidth{
		IngressRate: rate, IngressBurst: 512 * 1024, EgressRate: rate, EgressBurst: 512 * 1024,
	}})
	if err != nil {
		t.Fatal(err)
	}
	addr := a.IP.String() + ":5201"
	serveBulk(t, a.NetnsPath, addr)
	const size = 5 << 20
	for _, dir := range []struct {
		name string
		up   bool
	}{{"ingress (host->pod)", true}, {"egress (pod->host)", false}} {
		got := transfer(t, addr, dir.up, size)
		t.Logf("%s: %.1f Mbit/s (limit %.0f)", dir.name, got/1e6, rate/1e6)
		// A correctness check, not a benchmark: unshaped veth traffic runs
		// at several Gbit/s, so this band only passes if tbf is in place.
		if got < 0.8*rate || got > 1.1*rate {
			t.Errorf("%s: %.1f Mbit/s, want within [0.8, 1.1] x %.0f Mbit/s", dir.name, got/1e6, rate/1e6)
		}
	}
	// And without limits the same transfer is far faster, so the band above
	// measured the shaper, not a slow machine.
	b, err := e.m.Setup(context.Background(), Spec{PodID: "fast"})
	if err != nil {
		t.Fatal(err)
	}
	serveBulk(t, b.NetnsPath, b.IP.String()+":5201")
	if got := transfer(t, b.IP.String()+":5201", true, size); got < 2*rate {
		t.Errorf("unlimited pod: %.1f Mbit/s, expected well above %0.f", got/1e6, rate/1e6)
	} else {
		t.Logf("unlimited: %.0f Mbit/s", got/1e6)
	}
}
