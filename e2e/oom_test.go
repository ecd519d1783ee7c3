package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNodeOOMBecomesEventAndRestart: a service that eats memory past the
// pod's limit is OOM-killed by the kernel. In a gVisor sandbox the memcg
// OOM killer usually takes one of the sandbox's host processes, so the
// service dies and the sandbox lives: the node records an "oom" event with
// its reason, and the service's restart policy brings it back.
func TestNodeOOMBecomesEventAndRestart(t *testing.T) {
	d := startDaemon(t)
	spec := fmt.Sprintf(`name: hog
baseImage: %s
resources: {memoryMb: 256, storageMb: 1024}
services:
  - name: hog
    command: [sh, -c, "sleep 1; x=0123456789abcdef; while :; do x=\"$x$x\"; done"]
    restart: on-failure
`, busybox)
	if _, r := d.create(spec); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	var events string
	poll(t, 90*time.Second, "an oom event", func() bool {
		events = d.cli("pod", "events", "hog").stdout
		return strings.Contains(events, "oom")
	})
	if !strings.Contains(events, "out of memory") {
		t.Fatalf("the oom event does not say why:\n%s", events)
	}
	// The hog eats memory again after each restart, so by the time we
	// look it may have been killed and restarted more than once: at least
	// one restart, never an exact count.
	poll(t, 60*time.Second, "the service restarted after the OOM kill", func() bool {
		return d.service("hog", "hog").Restarts >= 1
	})
	if r := d.cli("pod", "delete", "hog"); r.code != 0 {
		t.Fatalf("delete: %s", r.stderr)
	}
}
