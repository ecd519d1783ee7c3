package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// warmTemplate is a template whose one service keeps a counter in memory
// (counterSpec's) and takes a while before it serves, as real dev
// servers do; env is one environment value, so a test can change the
// template.
func warmTemplate(env string) string {
	return fmt.Sprintf(`name: warm
description: a counter that warms up first
spec:
  baseImage: %s
  resources: {tier: dev.small, memoryMb: 256, storageMb: 1024}
  workingDir: /workspace
  environment: {FLAVOUR: %s}
  network:
    ports: [{name: web, internal: 8080}]
  services:
    - name: counter
      command: [sh, -c, 'sleep 2; mkdir -p /tmp/c; tok=$$-$(head -c6 /dev/urandom | od -An -tx1 | tr -d " \n"); i=0; (while true; do i=$((i+1)); echo "$tok $i" > /tmp/c/n.tmp; mv /tmp/c/n.tmp /tmp/c/index.html; sleep 0.1; done) & exec httpd -f -p 8080 -h /tmp/c']
      healthCheck: {type: http, port: 8080, path: /index.html, interval: 1s, timeout: 500ms, startPeriod: 30s}
`, busybox, env)
}

func (d *daemon) createFromTemplate(t *testing.T, name string) (podView, string) {
	t.Helper()
	r := d.cli("pod", "create", "--template", "warm", "--name", name, "-o", "json")
	if r.code != 0 {
		t.Fatalf("create %s: exit %d: %s", name, r.code, r.stderr)
	}
	var p podView
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("create -o json: %v: %s", err, r.stdout)
	}
	if p.State != "running" || len(p.Ports) != 1 {
		t.Fatalf("create %s: %+v", name, p)
	}
	return p, p.Ports[0].URL + "/index.html"
}

type snapView struct {
	Key      string `json:"key"`
	Template string `json:"template"`
	Bytes    int64  `json:"bytes"`
}

func (d *daemon) snapshots(t *testing.T) []snapView {
	t.Helper()
	r := d.cli("template", "snapshot", "ls", "-o", "json")
	var out []snapView
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil {
		t.Fatalf("template snapshot ls: exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
	return out
}

// TestTemplateSnapshot: a pod created from a template's snapshot runs the
// snapshot's processes (healthy as soon as create returns) on its own
// address, host port and writable layer; a broken snapshot falls back to
// a cold create with an event; a changed template does not use the old
// snapshot.
func TestTemplateSnapshot(t *testing.T) {
	tdir := ""
	d := startDaemonWith(t, nil, func(dir string) {
		tdir = filepath.Join(dir, "templates")
		os.MkdirAll(tdir, 0o755)
		os.WriteFile(filepath.Join(tdir, "warm.yaml"), []byte(warmTemplate("one")), 0o644)
	})
	a, aurl := d.createFromTemplate(t, "first")
	poll(t, 30*time.Second, "the counter past 5", func() bool { _, n := count(t, aurl, 5*time.Second); return n > 5 })
	if r := d.cli("template", "snapshot", "nosuch", "-o", "json"); r.code == 0 {
		t.Errorf("snapshot of an unknown template succeeded: %s", r.stdout)
	}
	r := d.cli("template", "snapshot", "warm", "-o", "json")
	var snap snapView
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &snap) != nil || snap.Key == "" || snap.Bytes <= 0 {
		t.Fatalf("template snapshot: exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
	tok, _ := count(t, aurl, 5*time.Second)
	if r := d.cli("pod", "exec", "first", "--", "sh", "-c", "echo mine > /workspace/first-only"); r.code != 0 {
		t.Fatalf("write: %s", r.stderr)
	}

	b, burl := d.createFromTemplate(t, "second")
	if b.IP == a.IP || b.Ports[0].External == a.Ports[0].External {
		t.Fatalf("restored pod %+v shares address or port with %+v", b, a)
	}
	// Healthy once create returned, with the snapshot's process: no
	// warm-up ran in this pod.
	btok, _ := count(t, burl, 5*time.Second)
	if btok != tok {
		t.Fatalf("restored pod serves token %s, want the snapshot's %s", btok, tok)
	}
	if ev := d.cli("pod", "events", "second", "-o", "json").stdout; !strings.Contains(ev, "Restored") {
		t.Fatalf("no Restored event:\n%s", ev)
	}
	if r := d.cli("pod", "exec", "second", "--", "test", "-e", "/workspace/first-only"); r.code == 0 {
		t.Fatal("a file written in the source after the snapshot is in the restored pod")
	}
	d.cli("pod", "exec", "second", "--", "sh", "-c", "echo b > /workspace/second-only")
	if r := d.cli("pod", "exec", "first", "--", "test", "-e", "/workspace/second-only"); r.code == 0 {
		t.Fatal("a file written in the restored pod is in the source")
	}
	if r := d.cli("pod", "exec", "second", "--", "sh", "-c", "ip -4 addr show eth0"); !strings.Contains(r.stdout, b.IP+"/") {
		t.Fatalf("restored pod's eth0: %q; want %s", r.stdout, b.IP)
	}

	// A broken snapshot: cold create, an event, the snapshot gone.
	ck := filepath.Join(d.dir, "data", "snapshots", snap.Key, "checkpoint")
	ents, err := os.ReadDir(ck)
	if err != nil || len(ents) == 0 {
		t.Fatalf("snapshot checkpoint: %v %v", ents, err)
	}
	for _, e := range ents {
		os.Truncate(filepath.Join(ck, e.Name()), 0)
	}
	_, curl := d.createFromTemplate(t, "third")
	if ctok, _ := count(t, curl, 5*time.Second); ctok == tok {
		t.Fatal("a pod from a broken snapshot serves the snapshot's process")
	}
	if ev := d.cli("pod", "events", "third", "-o", "json").stdout; !strings.Contains(ev, "SnapshotFailed") {
		t.Fatalf("no SnapshotFailed event:\n%s", ev)
	}
	if l := d.snapshots(t); len(l) != 0 {
		t.Fatalf("broken snapshot still listed: %+v", l)
	}

	// A snapshot again, then a changed template: its pods start cold and a
	// snapshot of it has another key.
	if r := d.cli("template", "snapshot", "warm", "--pod", "first", "-o", "json"); r.code != 0 {
		t.Fatalf("snapshot again: %s", r.stderr)
	}
	os.WriteFile(filepath.Join(tdir, "warm.yaml"), []byte(warmTemplate("two")), 0o644)
	d.stop()
	d.start()
	_, eurl := d.createFromTemplate(t, "fourth")
	etok, _ := count(t, eurl, 5*time.Second)
	if etok == tok {
		t.Fatal("a pod of the changed template was restored from the old snapshot")
	}
	if ev := d.cli("pod", "events", "fourth", "-o", "json").stdout; strings.Contains(ev, "Restored") {
		t.Fatalf("pod of the changed template restored:\n%s", ev)
	}
	r = d.cli("template", "snapshot", "warm", "--pod", "fourth", "-o", "json")
	var snap2 snapView
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &snap2) != nil || snap2.Key == snap.Key {
		t.Fatalf("snapshot of the changed template: %q %s (old key %s)", r.stdout, r.stderr, snap.Key)
	}
	for _, s := range d.snapshots(t) {
		if r := d.cli("template", "snapshot", "rm", s.Key, "-o", "json"); r.code != 0 {
			t.Fatalf("rm %s: %s", s.Key, r.stderr)
		}
	}
	if l := d.snapshots(t); len(l) != 0 {
		t.Fatalf("after rm: %+v", l)
	}
}

// TestSnapshotWebtermToken: a pod restored from a snapshot of a template
// with the web terminal gets its own token, and its terminal takes that
// token and refuses the snapshot source's.
func TestSnapshotWebtermToken(t *testing.T) {
	d := startDaemon(t)
	create := func(name string) podView {
		r := d.cli("pod", "create", "--template", "minimal", "--name", name, "-o", "json")
		var p podView
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &p) != nil || p.State != "running" {
			t.Fatalf("create %s: exit %d: %q %s", name, r.code, r.stdout, r.stderr)
		}
		return p
	}
	a := create("term-a")
	if r := d.cli("template", "snapshot", "minimal", "-o", "json"); r.code != 0 {
		t.Fatalf("snapshot: %s", r.stderr)
	}
	b := create("term-b")
	if ev := d.cli("pod", "events", "term-b", "-o", "json").stdout; !strings.Contains(ev, "Restored") {
		t.Fatalf("not restored from the snapshot:\n%s", ev)
	}
	token := func(p podView) string {
		b, err := os.ReadFile(filepath.Join(d.dir, "data", "pods", p.ID, "config", "webterm.token"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	ta, tb := token(a), token(b)
	if ta == "" || ta == tb {
		t.Fatalf("tokens %q and %q: want each pod its own", ta, tb)
	}
	var term string
	for _, p := range b.Ports {
		if p.Name == "terminal" {
			term = p.URL
		}
	}
	if term == "" {
		t.Fatalf("no terminal port: %+v", b.Ports)
	}
	poll(t, 30*time.Second, "the restored terminal taking its own token", func() bool {
		_, err := httpGet(term+"/?token="+tb, 5*time.Second)
		return err == nil
	})
	if body, err := httpGet(term+"/?token="+ta, 5*time.Second); err == nil {
		t.Fatalf("the restored terminal took the source's token: %.80q", body)
	}
	for _, s := range d.snapshots(t) {
		d.cli("template", "snapshot", "rm", s.Key)
	}
}

// TestTemplateSnapshotAuto: with snapshots.auto the first healthy cold pod
// of a template is snapshotted on its own, and the next pod of it is
// restored from that snapshot.
func TestTemplateSnapshotAuto(t *testing.T) {
	d := startDaemonWith(t, func(cfg string) string {
		return cfg + "snapshots: {auto: true, maxMb: 512}\n"
	}, func(dir string) {
		tdir := filepath.Join(dir, "templates")
		os.MkdirAll(tdir, 0o755)
		os.WriteFile(filepath.Join(tdir, "warm.yaml"), []byte(warmTemplate("auto")), 0o644)
	})
	_, aurl := d.createFromTemplate(t, "auto-a")
	poll(t, 60*time.Second, "an automatic snapshot", func() bool { return len(d.snapshots(t)) == 1 })
	if ev := d.cli("pod", "events", "auto-a", "-o", "json").stdout; !strings.Contains(ev, "Snapshotted") {
		t.Fatalf("no Snapshotted event:\n%s", ev)
	}
	tok, _ := count(t, aurl, 5*time.Second)
	_, burl := d.createFromTemplate(t, "auto-b")
	if btok, _ := count(t, burl, 5*time.Second); btok != tok {
		t.Fatalf("second pod serves token %s, want the snapshot's %s", btok, tok)
	}
	// The restored pod is not snapshotted again.
	if l := d.snapshots(t); len(l) != 1 {
		t.Fatalf("snapshots after the restored pod: %+v", l)
	}
	for _, s := range d.snapshots(t) {
		d.cli("template", "snapshot", "rm", s.Key)
	}
}
