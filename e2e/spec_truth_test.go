package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/podspec"
)

// Pod-level healthChecks gate readiness: a pod whose check passes runs
// (and pod health lists the check), one whose check never passes fails
// with the check named. The running pod's cgroup carries the tier's CPU
// shares.
func TestNodePodHealthChecksAndCPUShares(t *testing.T) {
	d := startDaemon(t)
	good := webSpec("chk-ok", "") + "healthChecks:\n  - {name: web-up, type: http, port: 8080, path: /index.html, interval: 1s, timeout: 500ms}\n"
	p, r := d.create(good)
	if r.code != 0 || p.State != "running" {
		t.Fatalf("create with a passing pod check: exit %d, %+v: %s", r.code, p, r.stderr)
	}
	r = d.cli("pod", "health", "chk-ok", "-o", "json")
	var h api.Health
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || r.code != 0 {
		t.Fatalf("pod health: exit %d %v: %s %s", r.code, err, r.stdout, r.stderr)
	}
	if !h.Healthy || len(h.Checks) != 1 || h.Checks[0].Name != "web-up" || h.Checks[0].Health != "healthy" {
		t.Fatalf("pod health = %+v, want healthy with check web-up healthy", h)
	}
	if r := d.cli("pod", "health", "chk-ok"); !strings.Contains(r.stdout, "Check web-up:") {
		t.Errorf("pod health table lacks the check:\n%s", r.stdout)
	}

	lim, err := podspec.Resources{Tier: "dev.small", MemoryMB: 256, StorageMB: 1024}.Limits()
	if err != nil {
		t.Fatal(err)
	}
	if shares, err := cgroupCPUShares("/pinacle/" + p.ID); err != nil || shares != lim.CPUShares {
		t.Errorf("pod's cpu shares = %d (%v), want the tier's %d", shares, err, lim.CPUShares)
	}

	bad := webSpec("chk-bad", "") + "healthChecks:\n  - {name: never-there, type: exec, command: [test, -e, /nonexistent], interval: 1s, timeout: 500ms, startPeriod: 1s, retries: 1}\n"
	_, r = d.create(bad)
	if r.code == 0 {
		t.Fatal("create succeeded with a pod check that never passes")
	}
	if !strings.Contains(r.stderr, "health check never-there") {
		t.Errorf("create error does not name the check: %s", r.stderr)
	}
	pb, _ := d.get("chk-bad")
	if pb.State != "failed" || !strings.Contains(pb.Reason, "health check never-there") {
		t.Errorf("failed pod = %+v: want failed, reason naming the check", pb)
	}
	for _, name := range []string{"chk-ok", "chk-bad"} {
		if r := d.cli("pod", "delete", name); r.code != 0 {
			t.Errorf("delete %s: exit %d: %s", name, r.code, r.stderr)
		}
	}
}

// cgroupCPUShares reads a cgroup's cpu.shares (cgroup v1) or converts
// cpu.weight (v2) back, as runc does.
func cgroupCPUShares(path string) (uint64, error) {
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", path, "cpu.shares")); err == nil {
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", path, "cpu.weight"))
	if err != nil {
		return 0, err
	}
	w, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, err
	}
	return 2 + ((w-1)*262142)/9999, nil
}
