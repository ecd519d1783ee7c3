package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// reaches says whether pod can fetch url. Anything other than a clean
// answer or a failure to connect (refused, unreachable, timed out) fails
// the test, so a broken probe never reads as "blocked".
func (d *daemon) reaches(pod, url string) bool {
	t := d.t
	t.Helper()
	r := d.cli("pod", "exec", pod, "--", "sh", "-c", "timeout 5 wget -q -O /dev/null "+url)
	t.Logf("%s: wget %s: exit %d %s", pod, url, r.code, strings.TrimSpace(r.stderr))
	switch {
	case r.code == 0:
		return true
	case r.code == 143, strings.Contains(r.stderr, "can't connect"), strings.Contains(r.stderr, "unreachable"):
		return false
	}
	t.Fatalf("probe from %s to %s did not run: exit %d: %s", pod, url, r.code, r.stderr)
	return false
}

// TestNodeEgressModes: mode allowlist opens only the Allow rules (here a
// private address the default mode blocks) and closes the rest (here a
// public address the default mode lets through); mode none reaches
// nothing. The "internet" is a server in a netns of the test's own.
func TestNodeEgressModes(t *testing.T) {
	d := startDaemon(t)
	inet := newInternet(t)
	spec := func(name, egress string) string {
		return fmt.Sprintf("name: %s\nbaseImage: %s\nresources: {memoryMb: 256, storageMb: 1024}\nnetwork:\n  egress: %s\n", name, busybox, egress)
	}
	if _, r := d.create(spec("allowed", fmt.Sprintf("{mode: allowlist, allow: [{cidr: %s/32, ports: [80], protocol: tcp}]}", inet.private))); r.code != 0 {
		t.Fatalf("create allowlist pod: %s", r.stderr)
	}
	if !d.reaches("allowed", "http://"+inet.private+"/index.html") {
		t.Error("allowlist: the allowed address is blocked")
	}
	if d.reaches("allowed", "http://"+inet.public+"/index.html") {
		t.Error("allowlist: an address outside the list is reachable")
	}
	if _, r := d.create(spec("sealed", "{mode: none}")); r.code != 0 {
		t.Fatalf("create none pod: %s", r.stderr)
	}
	if d.reaches("sealed", "http://"+inet.public+"/index.html") {
		t.Error("mode none: the pod reached the internet")
	}
}
