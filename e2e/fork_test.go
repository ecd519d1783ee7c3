package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestForkDiverges: a fork of a running pod has the source's in-memory
// state (the counter's process token and a count that went on from the
// source's), its own address and host port, and a copy of the source's
// files; afterwards the two count on separately and their files diverge.
func TestForkDiverges(t *testing.T) {
	d := startDaemon(t)
	src, url := counterPod(t, d, "orig", "")
	if r := d.cli("pod", "exec", "orig", "--", "sh", "-c", "echo before > /workspace/note"); r.code != 0 {
		t.Fatalf("write: %s", r.stderr)
	}
	tok, n := count(t, url, 5*time.Second)
	r := d.cli("pod", "fork", "orig", "--name", "copy", "-o", "json")
	if r.code != 0 {
		t.Fatalf("fork: exit %d: %s", r.code, r.stderr)
	}
	var fk podView
	if err := json.Unmarshal([]byte(r.stdout), &fk); err != nil {
		t.Fatalf("fork -o json: %v: %s", err, r.stdout)
	}
	if fk.State != "running" || fk.ID == src.ID || fk.IP == "" || fk.IP == src.IP ||
		len(fk.Ports) != 1 || fk.Ports[0].External == src.Ports[0].External {
		t.Fatalf("fork %+v; source %+v: want a running pod with its own ID, address and host port", fk, src)
	}
	furl := fk.Ports[0].URL + "/index.html"
	ftok, fn := count(t, furl, 10*time.Second)
	if ftok != tok || fn < n {
		t.Fatalf("fork serves token %s count %d; source had %s %d: want the same process, counting on", ftok, fn, tok, n)
	}
	// The fork answers on its own address from inside, too (the restored
	// netstack took the fork's netns's address, not the source's).
	if r := d.cli("pod", "exec", "copy", "--", "sh", "-c", "ip -4 addr show eth0"); !strings.Contains(r.stdout, fk.IP+"/") {
		t.Fatalf("fork's eth0: %q %s; want %s", r.stdout, r.stderr, fk.IP)
	}
	if r := d.cli("pod", "exec", "copy", "--", "cat", "/workspace/note"); strings.TrimSpace(r.stdout) != "before" {
		t.Fatalf("fork lacks the source's file: %q %s", r.stdout, r.stderr)
	}
	// Diverge: files written now are each pod's own.
	d.cli("pod", "exec", "orig", "--", "sh", "-c", "echo orig > /workspace/mine")
	d.cli("pod", "exec", "copy", "--", "sh", "-c", "echo copy > /workspace/mine")
	for name, want := range map[string]string{"orig": "orig", "copy": "copy"} {
		if r := d.cli("pod", "exec", name, "--", "cat", "/workspace/mine"); strings.TrimSpace(r.stdout) != want {
			t.Fatalf("%s's file: %q, want %q", name, r.stdout, want)
		}
	}
	// Both count on, separately: the source's counter is not the fork's.
	_, sn1 := count(t, url, 5*time.Second)
	_, fn1 := count(t, furl, 5*time.Second)
	poll(t, 10*time.Second, "both counters moving on", func() bool {
		_, sn2 := count(t, url, 5*time.Second)
		_, fn2 := count(t, furl, 5*time.Second)
		return sn2 > sn1 && fn2 > fn1
	})
	ev := d.cli("pod", "events", "copy", "-o", "json").stdout
	if !strings.Contains(ev, "Restored") {
		t.Errorf("fork's events lack Restored:\n%s", ev)
	}
	if ev := d.cli("pod", "events", "orig", "-o", "json").stdout; !strings.Contains(ev, "Forked") {
		t.Errorf("source's events lack Forked:\n%s", ev)
	}
	// A fork of a missing pod, or under a taken name, says so.
	if r := d.cli("pod", "fork", "nosuch", "--name", "x", "-o", "json"); r.code == 0 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("fork of a missing pod: exit %d: %s", r.code, r.stderr)
	}
	if r := d.cli("pod", "fork", "orig", "--name", "copy", "-o", "json"); r.code == 0 || !strings.Contains(r.stderr, "already_exists") {
		t.Errorf("fork under a taken name: exit %d: %s", r.code, r.stderr)
	}
}
