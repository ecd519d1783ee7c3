package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/internal/testimage"
	"github.com/pinacle/pinacle-node/oci"
)

const busybox = "pinacle.local/busybox:latest"

var daemonSeq atomic.Int32

// daemon is a pinacle-node serve of one test, with its own data root,
// runsc root, socket, subnet pool and host port range.
type daemon struct {
	t                *testing.T
	dir, cfg, sock   string
	pool             string
	portMin, portMax int
	gwPort           int // the gateway's port, on 127.0.0.1 unless the test's config says otherwise
	cmd              *exec.Cmd
	done             chan struct{}
	logPath          string
}

func startDaemon(t *testing.T, env ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, nil, nil, env...)
}

// startDaemonWith lets a test extend the config (editCfg) and prepare the
// daemon's directory (prepare) before it starts.
func startDaemonWith(t *testing.T, editCfg func(string) string, prepare func(dir string), env ...string) *daemon {
	t.Helper()
	requireNode(t)
	n := int(daemonSeq.Add(1))
	dir, err := os.MkdirTemp(workRoot, "node-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dir: dir, cfg: filepath.Join(dir, "node.yaml"), sock: filepath.Join(dir, "node.sock"),
		pool: daemonPool(n), portMin: 24000 + 100*n, portMax: 24000 + 100*n + 99, gwPort: 23800 + n}
	cfg := fmt.Sprintf("dataRoot: %s/data\nrunscRoot: %s/runsc\nsocket: %s\ntemplatesDir: %s/templates\nnetwork: {pool: %s}\nports: {min: %d, max: %d, listenAddr: 127.0.0.1}\ngateway: {port: %d}\nwarmPool: {recent: 0, max: 0}\n",
		dir, dir, d.sock, dir, d.pool, d.portMin, d.portMax, d.gwPort)
	if editCfg != nil {
		cfg = editCfg(cfg)
	}
	if prepare != nil {
		prepare(dir)
	}
	if err := os.WriteFile(d.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout")
	if err := testimage.WriteOCILayout(layout, map[string]v1.Image{busybox: img}); err != nil {
		t.Fatal(err)
	}
	if r := node(t, []string{"PINACLE_DATA_ROOT=" + dir + "/data"}, "image", "import", layout); r.code != 0 {
		t.Fatalf("import: %s", r.stderr)
	}
	d.logPath = filepath.Join(dir, "serve.log")
	guardLeaks(t, dir) // its check runs after shutdown (cleanups run last-in first-out)
	t.Cleanup(d.shutdown)
	d.start(env...)
	return d
}

func (d *daemon) start(env ...string) {
	d.t.Helper()
	log, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer log.Close()
	d.cmd = exec.Command(nodeBin, "serve", "--config", d.cfg)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(d.cmd, d.done)
	poll(d.t, 30*time.Second, "daemon socket", func() bool {
		c, err := net.Dial("unix", d.sock)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-d.done:
			d.t.Fatalf("daemon exited at start; log:\n%s", d.logTail())
		default:
		}
		return false
	})
}

func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// exited waits for the daemon to die on its own (a crash point).
func (d *daemon) exited(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.t.Errorf("daemon did not exit on SIGTERM")
		d.kill()
	}
}

// shutdown deletes every pod, stops the daemon and removes node-level state.
func (d *daemon) shutdown() {
	select {
	case <-d.done:
		d.start()
	default:
	}
	r := d.cli("pod", "ls", "-o", "json")
	var pods []podView
	_ = json.Unmarshal([]byte(r.stdout), &pods)
	for _, p := range pods {
		if r := d.cli("pod", "delete", p.ID); r.code != 0 {
			d.t.Errorf("cleanup: delete %s: %s", p.ID, r.stderr)
		}
	}
	d.stop()
	if r := node(d.t, nil, "cleanup", "--config", d.cfg); r.code != 0 {
		d.t.Errorf("cleanup: %s", r.stderr)
	}
	out, _ := exec.Command("runsc", "--root", d.dir+"/runsc", "list", "-quiet").Output()
	if ids := strings.TrimSpace(string(out)); ids != "" {
		d.t.Errorf("runsc containers left: %s", ids)
	}
	_ = oci.ReleaseRoot(d.dir + "/runsc")
	if d.t.Failed() {
		d.t.Logf("daemon log:\n%s", d.logTail())
	}
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	lines := strings.Split(string(b), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

func (d *daemon) cli(args ...string) result {
	d.t.Helper()
	return node(d.t, []string{"PINACLE_SOCKET=" + d.sock}, args...)
}

type podView struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
	IP     string `json:"ip"`
	Ports  []struct {
		Name     string `json:"name"`
		Internal int    `json:"internal"`
		External int    `json:"external"`
		URL      string `json:"url"`
		Gateway  string `json:"gateway"`
	} `json:"ports"`
}

func (d *daemon) get(id string) (podView, result) {
	d.t.Helper()
	r := d.cli("pod", "get", id, "-o", "json")
	var p podView
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			d.t.Fatalf("pod get -o json: %v: %s", err, r.stdout)
		}
	}
	return p, r
}

// create writes spec (YAML) to a file and creates the pod, waiting for it.
func (d *daemon) create(spec string, extra ...string) (podView, result) {
	d.t.Helper()
	f := filepath.Join(d.dir, fmt.Sprintf("pod-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(spec), 0o644); err != nil {
		d.t.Fatal(err)
	}
	r := d.cli(append([]string{"pod", "create", "-f", f, "-o", "json"}, extra...)...)
	var p podView
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			d.t.Fatalf("pod create -o json: %v: %s", err, r.stdout)
		}
	}
	return p, r
}

func webSpec(name, extra string) string {
	return fmt.Sprintf(`name: %s
baseImage: %s
resources: {tier: dev.small, memoryMb: 256, storageMb: 1024}
services:
  - name: web
    command: [sh, -c, "echo serving from $(hostname); exec httpd -f -p 8080 -h /srv"]
    healthCheck: {type: http, port: 8080, path: /index.html, interval: 1s, timeout: 500ms}
    install: [sh, -c, "mkdir -p /srv && hostname > /srv/index.html && head -c 4000000 /dev/urandom > /srv/big"]
    creates: /srv/index.html
network:
  ports: [{name: web, internal: 8080}]
%s`, name, busybox, extra)
}

// poll calls cond until it is true or timeout passes.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpGet(url string, timeout time.Duration) (string, error) {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// daemonPool is the subnet pool of the test's n-th daemon: a /16 each (as
// the suite has always run them), from 10.100.0.0 up; 10.254/16 is the
// stand-in internet's, so at most 153 daemons. Starting at 10.220 ran out
// of 10/8 at the 37th daemon, which the suite now starts.
func daemonPool(n int) string {
	if 100+n >= 254 {
		panic(fmt.Sprintf("e2e: daemon %d: no /16 left in 10.100-10.253 for its pool", n))
	}
	return fmt.Sprintf("10.%d.0.0/16", 100+n)
}
