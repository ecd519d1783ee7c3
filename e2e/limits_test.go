package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestNodeStorageCap: a pod's resources.storageMb caps what it can write
// (writable layer and workspace on one size-capped filesystem): writing
// past it fails with ENOSPC, and deleting gives the space back.
func TestNodeStorageCap(t *testing.T) {
	d := startDaemon(t)
	spec := fmt.Sprintf("name: capped\nbaseImage: %s\nresources: {memoryMb: 256, storageMb: 1024}\n", busybox)
	if _, r := d.create(spec); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	r := d.cli("pod", "exec", "capped", "--", "dd", "if=/dev/zero", "of=/workspace/big", "bs=1M", "count=1200")
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
		t.Fatalf("writing 1200 MB into a 1024 MB pod: exit %d: %s", r.code, r.stderr)
	}
	r = d.cli("pod", "exec", "capped", "--", "sh", "-c", "rm /workspace/big && dd if=/dev/zero of=/big bs=1M count=100")
	if r.code != 0 {
		t.Fatalf("writing within the cap after freeing space: exit %d: %s", r.code, r.stderr)
	}
}

// TestNodeIngressBandwidth: network.bandwidth.ingressRate caps what flows
// into the pod. The host uploads 4 MB to a listener in the pod; the rate
// at which the pod receives it must stay under the limit (with the same
// margin as the egress test).
func TestNodeIngressBandwidth(t *testing.T) {
	d := startDaemon(t)
	const rate = 16_000_000 // bits/s
	const size = 4_000_000
	spec := fmt.Sprintf(`name: inbw
baseImage: %s
resources: {memoryMb: 256, storageMb: 1024}
services:
  - name: sink
    command: [sh, -c, "while :; do nc -l -p 9000 > /tmp/up.part && mv /tmp/up.part /tmp/up; done"]
network:
  bandwidth: {ingressRate: %d, ingressBurst: 256000}
`, busybox, rate)
	p, r := d.create(spec)
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	addr := net.JoinHostPort(p.IP, "9000")
	var c net.Conn
	poll(t, 20*time.Second, "the listener in the pod", func() bool {
		var err error
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err == nil
	})
	// That connection was the probe; the sink restarts nc for the next.
	c.Close()
	poll(t, 20*time.Second, "the probe's empty upload recorded", func() bool {
		return d.cli("pod", "exec", "inbw", "--", "test", "-e", "/tmp/up").code == 0
	})
	var tc *net.TCPConn
	poll(t, 20*time.Second, "the listener back", func() bool {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			tc = c.(*net.TCPConn)
		}
		return err == nil
	})
	defer tc.Close()
	t0 := time.Now()
	if _, err := tc.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// nc in the pod closes its side once it has read everything.
	_ = tc.SetReadDeadline(time.Now().Add(120 * time.Second))
	if _, err := io.Copy(io.Discard, tc); err != nil {
		t.Fatalf("waiting for the pod to finish reading: %v", err)
	}
	el := time.Since(t0)
	poll(t, 20*time.Second, "the upload in the pod", func() bool {
		r := d.cli("pod", "exec", "inbw", "--", "sh", "-c", "wc -c < /tmp/up")
		return strings.TrimSpace(r.stdout) == fmt.Sprint(size)
	})
	got := float64(size*8) / el.Seconds()
	t.Logf("ingress limit %d bit/s, measured %.0f bit/s (%.2fx)", rate, got, got/rate)
	// The cap must hold: a 256 kbit burst cannot lift 32 Mbit past it by 10%.
	if got > rate*1.1 {
		t.Fatalf("upload into the pod at %.0f bit/s, above the %d bit/s limit", got, rate)
	}
}
