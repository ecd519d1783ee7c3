package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// warmSpec is a pod whose one service reports, through its host port,
// what a claimed warm sandbox must get right: the hostname (uname and
// /etc/hostname), the pod's environment, and a file it made in the
// workspace as the pod's user.
func warmSpec(name, memory string) string {
	return fmt.Sprintf(`name: %s
baseImage: %s
user: dev
workingDir: /workspace
environment: {GREETING: hello-%s}
resources: {tier: dev.small, memoryMb: %s, storageMb: 1024}
services:
  - name: web
    command: [sh, -c, "mkdir -p /tmp/srv && cd /tmp/srv && hostname > hostname && cat /etc/hostname > etchostname && echo $GREETING > greeting && id -un > whoami && grep -c . /etc/hosts > hosts && echo made > /workspace/made-by-web && exec httpd -f -p 8080 -h /tmp/srv"]
    healthCheck: {type: http, port: 8080, path: /hostname, interval: 1s, timeout: 500ms}
network:
  ports: [{name: web, internal: 8080}]
`, name, busybox, name, memory)
}

type warmStatus struct {
	Warm     struct{ Count int } `json:"warm"`
	WarmPool struct {
		MemoryBytes int64 `json:"memoryBytes"`
		DiskBytes   int64 `json:"diskBytes"`
		Entries     []struct {
			ID    string `json:"id"`
			IP    string `json:"ip"`
			Ready bool   `json:"ready"`
		} `json:"entries"`
	} `json:"warmPool"`
}

func (d *daemon) nodeStatus(t *testing.T) warmStatus {
	t.Helper()
	r := d.cli("status", "-o", "json")
	if r.code != 0 {
		t.Fatalf("status: %s", r.stderr)
	}
	var s warmStatus
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status -o json: %v: %s", err, r.stdout)
	}
	return s
}

// readyWarm waits for n ready entries (none of them in not) and returns them.
func (d *daemon) readyWarm(t *testing.T, n int, not ...string) (ids, ips []string) {
	t.Helper()
	poll(t, 90*time.Second, fmt.Sprintf("%d ready warm sandboxes", n), func() bool {
		ids, ips = nil, nil
		for _, e := range d.nodeStatus(t).WarmPool.Entries {
			if e.Ready && !slices.Contains(not, e.ID) {
				ids, ips = append(ids, e.ID), append(ips, e.IP)
			}
		}
		return len(ids) >= n
	})
	return ids, ips
}

func (d *daemon) events(t *testing.T, pod string) string {
	t.Helper()
	r := d.cli("pod", "events", pod, "-o", "json")
	if r.code != 0 {
		t.Fatalf("pod events %s: %s", pod, r.stderr)
	}
	return r.stdout
}

// podFacts is what a cold and a claimed pod must have alike (with their
// own name in it).
func (d *daemon) podFacts(t *testing.T, p podView) map[string]string {
	t.Helper()
	f := map[string]string{}
	base := fmt.Sprintf("http://127.0.0.1:%d/", p.Ports[0].External)
	for _, k := range []string{"hostname", "etchostname", "greeting", "whoami", "hosts"} {
		body, err := httpGet(base+k, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: GET %s: %v", p.Name, k, err)
		}
		f[k] = strings.ReplaceAll(strings.TrimSpace(body), p.Name, "NAME")
	}
	for k, cmd := range map[string]string{
		"uname":     "hostname",
		"workspace": "stat -c '%U:%G %a' /workspace /workspace/made-by-web",
		"ps":        "ps -o user,args | grep -e init -e httpd | grep -v grep",
		"env":       "echo $GREETING",
	} {
		r := d.cli("pod", "exec", p.Name, "--", "sh", "-c", cmd)
		if r.code != 0 {
			t.Fatalf("%s: exec %q: %d %s", p.Name, cmd, r.code, r.stderr)
		}
		f[k] = strings.ReplaceAll(strings.TrimSpace(r.stdout), p.Name, "NAME")
	}
	for _, c := range []string{"memory/pinacle/%s/memory.limit_in_bytes", "cpu/pinacle/%s/cpu.cfs_quota_us", "pids/pinacle/%s/pids.max"} {
		b, err := os.ReadFile("/sys/fs/cgroup/" + fmt.Sprintf(c, p.ID))
		if err != nil {
			t.Fatalf("%s: cgroup: %v", p.Name, err)
		}
		f[c] = strings.TrimSpace(string(b))
	}
	return f
}

func warmDaemon(t *testing.T, env ...string) *daemon {
	return startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "warmPool: {recent: 0, max: 0}", "warmPool: {recent: 2, max: 2}", 1)
	}, nil, env...)
}

// TestWarmPoolClaim: a create that claims a warm sandbox gives the pod a
// cold create gives, isolated from its former pool siblings; the pool
// refills; a create of another shape is cold and says why.
func TestWarmPoolClaim(t *testing.T) {
	d := warmDaemon(t)
	cold, r := d.create(warmSpec("cold", "256"))
	if r.code != 0 {
		t.Fatalf("create cold: %s", r.stderr)
	}
	if ev := d.events(t, "cold"); !strings.Contains(ev, "ColdCreate") || strings.Contains(ev, "WarmClaimed") {
		t.Fatalf("first create: want a ColdCreate event and no claim:\n%s", ev)
	}
	ids, ips := d.readyWarm(t, 2)
	w1, r := d.create(warmSpec("warm1", "256"))
	if r.code != 0 {
		t.Fatalf("create warm1: %s", r.stderr)
	}
	if ev := d.events(t, "warm1"); !strings.Contains(ev, "WarmClaimed") || strings.Contains(ev, "ColdCreate") {
		t.Fatalf("warm1: want a WarmClaimed event:\n%s", ev)
	}
	if !slices.Contains(ids, w1.ID) {
		t.Fatalf("warm1 is %s, not one of the warm sandboxes %v", w1.ID, ids)
	}
	want, got := d.podFacts(t, cold), d.podFacts(t, w1)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: cold pod %q, claimed pod %q", k, v, got[k])
		}
	}
	if got["hostname"] != "NAME" || got["etchostname"] != "NAME" || got["greeting"] != "hello-NAME" || got["whoami"] != "dev" {
		t.Errorf("claimed pod's facts: %v", got)
	}
	// Its former sibling, claimed in turn, is a pod of its own: neither
	// reaches the other, each reaches itself.
	w2, r := d.create(warmSpec("warm2", "256"))
	if r.code != 0 {
		t.Fatalf("create warm2: %s", r.stderr)
	}
	if ev := d.events(t, "warm2"); !strings.Contains(ev, "WarmClaimed") {
		t.Fatalf("warm2: want a WarmClaimed event:\n%s", ev)
	}
	// The oldest entry goes first: warm2 has warm1's sibling.
	if !slices.Contains(ids, w2.ID) || w1.IP == w2.IP || !slices.Contains(ips, w1.IP) || !slices.Contains(ips, w2.IP) {
		t.Fatalf("claimed pods %s (%s) and %s (%s), warm sandboxes %v %v", w1.ID, w1.IP, w2.ID, w2.IP, ids, ips)
	}
	for _, c := range [][2]podView{{w1, w2}, {w2, w1}} {
		if !d.reaches(c[0].Name, fmt.Sprintf("http://%s:8080/hostname", c[0].IP)) {
			t.Errorf("%s does not reach itself", c[0].Name)
		}
		if d.reaches(c[0].Name, fmt.Sprintf("http://%s:8080/hostname", c[1].IP)) {
			t.Errorf("%s reaches its former pool sibling %s", c[0].Name, c[1].Name)
		}
	}
	// The pool refills with new sandboxes.
	d.readyWarm(t, 2, ids...)
	// Another shape is created cold, with the reason.
	other, r := d.create(warmSpec("other", "384"))
	if r.code != 0 {
		t.Fatalf("create other: %s", r.stderr)
	}
	if ev := d.events(t, "other"); !strings.Contains(ev, "no warm sandbox of this shape") {
		t.Fatalf("other shape: want a ColdCreate event with its reason:\n%s", ev)
	}
	if body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/hostname", other.Ports[0].External), 5*time.Second); err != nil || strings.TrimSpace(body) != "other" {
		t.Fatalf("other: %q %v", body, err)
	}
}

// TestWarmPoolClaimFails: a claim that fails (the fault seam) leaves the
// pod created cold from the same bundle, with an event; the warm
// sandbox goes.
func TestWarmPoolClaimFails(t *testing.T) {
	d := warmDaemon(t, "PINACLE_WARM_FAULT=claim")
	if _, r := d.create(warmSpec("first", "256")); r.code != 0 {
		t.Fatalf("create first: %s", r.stderr)
	}
	ids, _ := d.readyWarm(t, 1)
	p, r := d.create(warmSpec("second", "256"))
	if r.code != 0 {
		t.Fatalf("create second: %s", r.stderr)
	}
	if ev := d.events(t, "second"); !strings.Contains(ev, "WarmClaimFailed") || !strings.Contains(ev, "creating it cold") {
		t.Fatalf("want a WarmClaimFailed event:\n%s", ev)
	}
	if !slices.Contains(ids, p.ID) {
		t.Fatalf("second is %s, not one of the warm sandboxes %v", p.ID, ids)
	}
	f := d.podFacts(t, p)
	if f["hostname"] != "NAME" || f["greeting"] != "hello-NAME" || f["whoami"] != "dev" {
		t.Fatalf("pod after a failed claim: %v", f)
	}
}

// TestWarmPoolDaemonKilled: warm sandboxes a SIGKILLed daemon left are
// torn down by the next start (nothing adopted), which boots new ones.
func TestWarmPoolDaemonKilled(t *testing.T) {
	d := warmDaemon(t)
	if _, r := d.create(warmSpec("first", "256")); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	old, _ := d.readyWarm(t, 2)
	d.kill()
	d.start()
	d.readyWarm(t, 2, old...)
	out, err := exec.Command("runsc", "--root", d.dir+"/runsc", "list", "-quiet").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range old {
		if strings.Contains(string(out), id) {
			t.Errorf("the killed daemon's warm sandbox %s still runs", id)
		}
		if _, err := os.Stat(filepath.Join(d.dir, "data", "pods", id)); !os.IsNotExist(err) {
			t.Errorf("the killed daemon's warm sandbox %s left its directory: %v", id, err)
		}
	}
}
