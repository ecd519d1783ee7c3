package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/pinacle/pinacle-node/internal/leakcheck"
)

// The host CLI runs as a real binary against the stand-in limactl in
// testdata (it runs `shell VM CMD` on this machine), which runs a real
// pinacle-node against a real daemon: everything but the VM is real.

// env is a host CLI environment: its binaries and the stand-in's state.
type env struct {
	t        *testing.T
	dir      string // everything the test makes lives below this
	bin      string // pinacle, pinacle-node
	limaDir  string // the stand-in's state
	extraEnv []string
}

// result is one run of the host CLI.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// build compiles a package into dir (static: the node copies itself into
// pods as their init).
func build(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// newEnv makes a work directory (removed at the end unless something is
// still mounted below it) and builds the host CLI into it.
func newEnv(t *testing.T, withNode bool) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "phc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m := mountsUnder(dir); len(m) > 0 {
			t.Errorf("not removing %s: still mounted below it: %v", dir, m)
			return
		}
		os.RemoveAll(dir)
	})
	e := &env{t: t, dir: dir, bin: filepath.Join(dir, "bin"), limaDir: filepath.Join(dir, "lima")}
	for _, d := range []string{e.bin, e.limaDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build(t, e.bin, ".", "pinacle")
	if withNode {
		build(t, e.bin, "../pinacle-node", "pinacle-node")
		build(t, e.bin, "../pinacle-init", "pinacle-init") // pods' PID 1, found beside the node
	}
	return e
}

// run runs the host CLI with args and stdin.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	limactl, err := filepath.Abs("testdata/limactl")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "pinacle"), args...)
	cmd.Env = append(os.Environ(),
		"LIMACTL="+limactl,
		"FAKE_LIMA_STATE="+e.limaDir,
		"PATH="+e.bin+":"+os.Getenv("PATH"),
		"PINACLE_VM=", "PINACLE_NODE_SOCKET=", "PINACLE_NODE_DATA_ROOT=",
	)
	cmd.Env = append(cmd.Env, e.extraEnv...)
	cmd.Dir = e.dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("pinacle %v: %v", args, err)
	}
	return r
}

// ok runs the host CLI and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run("", args...)
	if r.code != 0 {
		e.t.Fatalf("pinacle %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// calls returns the limactl command lines the stand-in saw.
func (e *env) calls() []string {
	b, _ := os.ReadFile(filepath.Join(e.limaDir, "calls"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var ms []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			ms = append(ms, f[4])
		}
	}
	return ms
}

func TestVMLifecycle(t *testing.T) {
	e := newEnv(t, false)
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := filepath.Join(repo, "lima.yaml")

	// Missing VM: not_found, exit 3, for every command that needs one.
	for _, args := range [][]string{{"vm", "status"}, {"vm", "start"}, {"vm", "stop"}, {"vm", "delete"}} {
		r := e.run("", args...)
		if r.code != 3 || !strings.Contains(r.stderr, "Error (not_found): ") {
			t.Errorf("pinacle %v without a VM: want exit 3 and not_found, got %s", args, r)
		}
	}

	e.ok("vm", "create", "--template", tmpl, "--cpus", "6", "--memory", "12")
	want := fmt.Sprintf("create --name=pinacle --tty=false --set .param.PinacleRepo = %q --cpus=6 --memory=12 %s", repo, tmpl)
	if c := e.calls(); c[len(c)-1] != want {
		t.Errorf("limactl call:\n got %q\nwant %q", c[len(c)-1], want)
	}
	if r := e.run("", "vm", "create", "--template", tmpl); r.code != 4 || !strings.Contains(r.stderr, "already_exists") {
		t.Errorf("second create: want exit 4 already_exists, got %s", r)
	}

	e.ok("vm", "start")
	if c := e.calls(); c[len(c)-1] != "start --tty=false pinacle" {
		t.Errorf("limactl call %q, want start --tty=false pinacle", c[len(c)-1])
	}
	r := e.ok("vm", "status", "-o", "json")
	var inst struct{ Name, Status string }
	if err := json.Unmarshal([]byte(r.stdout), &inst); err != nil || inst.Name != "pinacle" || inst.Status != "Running" {
		t.Errorf("vm status -o json: %+v, %v\n%s", inst, err, r)
	}
	r = e.ok("vm", "status")
	if !regexp.MustCompile(`(?m)^Status:\s+Running$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^Memory:\s+8\.0 GiB$`).MatchString(r.stdout) {
		t.Errorf("vm status table:\n%s", r)
	}

	// --vm and PINACLE_VM choose another VM.
	if r := e.run("", "vm", "status", "--vm", "other"); r.code != 3 {
		t.Errorf("vm status --vm other: want exit 3, got %s", r)
	}
	e.extraEnv = []string{"PINACLE_VM=other"}
	e.ok("vm", "up", "--template", tmpl)
	e.extraEnv = nil
	c := e.calls()
	if got := c[len(c)-2:]; !strings.HasPrefix(got[0], "create --name=other ") || got[1] != "start --tty=false other" {
		t.Errorf("vm up: limactl calls %q", got)
	}

	e.ok("vm", "stop")
	if c := e.calls(); c[len(c)-1] != "stop pinacle" {
		t.Errorf("limactl call %q, want stop pinacle", c[len(c)-1])
	}
	// A stopped VM: forwarded commands fail as unavailable (exit 7).
	r = e.run("", "pod", "ls")
	if r.code != 7 || !strings.Contains(r.stderr, "Error (unavailable): ") || !strings.Contains(r.stderr, "is stopped") {
		t.Errorf("pod ls on a stopped VM: want exit 7 with limactl's message, got %s", r)
	}
	e.ok("vm", "delete", "--force")
	if c := e.calls(); c[len(c)-1] != "delete --force pinacle" {
		t.Errorf("limactl call %q, want delete --force pinacle", c[len(c)-1])
	}
	if r := e.run("", "vm", "status"); r.code != 3 {
		t.Errorf("status after delete: want exit 3, got %s", r)
	}
}

// requireNodeHost skips unless this machine can run pods: root, runsc,
// the CNI plugins and iptables.
func requireNodeHost(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root: the node creates sandboxes, mounts and network namespaces")
	}
	for _, p := range []string{"runsc", "iptables"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Missing(t, "%s is not installed (make setup)", p)
		}
	}
	if _, err := os.Stat("/opt/cni/bin/bridge"); err != nil {
		testenv.Missing(t, "CNI plugins are not installed in /opt/cni/bin (make setup)")
	}
}

const podSpec = `name: hc1
baseImage: pinacle.local/busybox:latest
services:
- name: web
  command: [httpd, -f, -p, "8080", -h, /]
  healthCheck: {type: http, port: 8080, path: /etc/hostname, interval: 1s, timeout: 500ms}
network:
  ports:
  - {name: web, internal: 8080}
`

type podJSON struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	IP    string `json:"ip"`
	Ports []struct {
		Name     string `json:"name"`
		Internal int    `json:"internal"`
		External int    `json:"external"`
		URL      string `json:"url"`
	} `json:"ports"`
}

func TestPodsThroughHostCLI(t *testing.T) {
	requireNodeHost(t)
	e := newEnv(t, true)
	node := filepath.Join(e.bin, "pinacle-node")
	data, sock := filepath.Join(e.dir, "data"), filepath.Join(e.dir, "node.sock")
	cfg := filepath.Join(e.dir, "node.yaml")
	gwPort := freePort(t)
	cfgText := fmt.Sprintf(`dataRoot: %s
runscRoot: %s
socket: %s
templatesDir: %s
network: {pool: 10.212.0.0/16}
ports: {min: 23000, max: 23100, listenAddr: 127.0.0.1}
gateway: {port: %d}
`, data, filepath.Join(e.dir, "runsc"), sock, filepath.Join(e.dir, "templates"), gwPort)
	if err := os.WriteFile(cfg, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.dir, "10.212.")

	// The image, straight into the node's data root.
	oci := filepath.Join(e.dir, "oci")
	if b, err := exec.Command("go", "run", "../../hack/mkimage", "-o", oci).CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v\n%s", err, b)
	}
	imp := exec.Command(node, "image", "import", oci)
	imp.Env = append(os.Environ(), "PINACLE_DATA_ROOT="+data)
	if b, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("image import: %v\n%s", err, b)
	}

	// The stand-in VM "hc", running; the node CLI in it reaches our daemon.
	if b, err := exec.Command("testdata/limactl").CombinedOutput(); err == nil || !strings.Contains(string(b), "FAKE_LIMA_STATE") {
		t.Fatalf("stand-in without state: %v %s", err, b)
	}
	e.extraEnv = []string{"PINACLE_VM=hc", "PINACLE_NODE_SOCKET=" + sock, "PINACLE_NODE_DATA_ROOT=" + data}
	tmpl, err := filepath.Abs("../../lima.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e.ok("vm", "up", "--template", tmpl)

	// Images through the host CLI, table and JSON.
	r := e.ok("image", "ls")
	if !regexp.MustCompile(`(?m)^REF\s+ID\s+SIZE$`).MatchString(r.stdout) || !strings.Contains(r.stdout, "pinacle.local/busybox:latest") {
		t.Errorf("image ls table:\n%s", r)
	}
	var imgs []struct{ Refs []string }
	if err := json.Unmarshal([]byte(e.ok("image", "ls", "-o", "json").stdout), &imgs); err != nil || len(imgs) != 1 || imgs[0].Refs[0] != "pinacle.local/busybox:latest" {
		t.Errorf("image ls -o json: %+v %v", imgs, err)
	}

	// The daemon.
	logf, err := os.Create(filepath.Join(e.dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	serve := exec.Command(node, "serve", "--config", cfg)
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- serve.Wait() }()
	stopped := false
	stopDaemon := func() {
		if stopped {
			return
		}
		stopped = true
		_ = serve.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
			<-served
			t.Error("serve did not stop within 30s of SIGTERM")
		}
	}
	t.Cleanup(func() {
		// Whatever happened above: no pod may outlive the test.
		if !stopped {
			out, _ := exec.Command(node, "pod", "ls", "-o", "json", "--socket", sock).Output()
			var ps []podJSON
			_ = json.Unmarshal(out, &ps)
			for _, p := range ps {
				_ = exec.Command(node, "pod", "delete", p.ID, "--socket", sock).Run()
			}
			stopDaemon()
		}
		if b, err := exec.Command(node, "cleanup", "--config", cfg).CombinedOutput(); err != nil {
			t.Errorf("pinacle-node cleanup: %v\n%s", err, b)
		}
		if err := leakcheck.Check(ctx, before, 10*time.Second, e.dir, "10.212."); err != nil {
			t.Error(err)
		}
		if m := mountsUnder(e.dir); len(m) > 0 {
			t.Errorf("mounts left under %s: %v", e.dir, m)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("serve log:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not serve its socket within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// create -f FILE: the host file goes over stdin.
	spec := filepath.Join(e.dir, "hc1.yaml")
	if err := os.WriteFile(spec, []byte(podSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.ok("pod", "create", "-f", spec, "-o", "json")
	var pod podJSON
	if err := json.Unmarshal([]byte(r.stdout), &pod); err != nil {
		t.Fatalf("pod create -o json: %v\n%s", err, r)
	}
	if pod.Name != "hc1" || pod.State != "running" || len(pod.Ports) != 1 {
		t.Fatalf("created pod: %+v", pod)
	}
	port := pod.Ports[0]
	if port.External < 23000 || port.External > 23100 || port.URL != "http://127.0.0.1:"+strconv.Itoa(port.External) {
		t.Errorf("port %+v: want a host port in 23000-23100 and URL http://127.0.0.1:PORT", port)
	}
	c := e.calls()
	wantCall := fmt.Sprintf("shell --workdir / hc sudo env PINACLE_SOCKET=%s PINACLE_DATA_ROOT=%s pinacle-node pod create -f - -o json", sock, data)
	if c[len(c)-1] != wantCall {
		t.Errorf("limactl call:\n got %q\nwant %q", c[len(c)-1], wantCall)
	}
	// The URL the host CLI printed serves the pod's web service.
	deadline = time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(port.URL + "/etc/hostname")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s/etc/hostname: %v", port.URL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// ls: the table has the URL; JSON round-trips.
	r = e.ok("pod", "ls")
	t.Logf("pinacle pod ls:\n%s", r.stdout)
	if !regexp.MustCompile(`(?m)^ID\s+NAME\s+STATE\s+TEMPLATE\s+IP\s+PORTS/URLS\s+AGE$`).MatchString(r.stdout) {
		t.Errorf("pod ls header:\n%s", r)
	}
	gwURL := fmt.Sprintf("http://web-%s.localhost:%d/", pod.ID, gwPort)
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(pod.ID) + `\s+hc1\s+running\s+\S+\s+` + regexp.QuoteMeta(pod.IP) + `\s+web=` + regexp.QuoteMeta(gwURL) + `\s+\d+[smhd]$`)
	if !row.MatchString(r.stdout) {
		t.Errorf("pod ls row for %s with web=%s (the gateway's URL):\n%s", pod.ID, gwURL, r)
	}
	// pod url: a link that signs in through the gateway.
	link := strings.TrimSpace(e.ok("pod", "url", "hc1", "web").stdout)
	if !strings.HasPrefix(link, strings.TrimSuffix(gwURL, "/")+"/__pinacle/auth?token=") {
		t.Errorf("pod url: %q, want a link on %s", link, gwURL)
	}
	if body := getThroughGateway(t, gwPort, link+"&next=/etc/hostname"); !strings.Contains(body, "hc1") {
		t.Errorf("through the gateway: %q, want the pod's hostname", body)
	}
	var ps []podJSON
	if err := json.Unmarshal([]byte(e.ok("pod", "ls", "-o", "json").stdout), &ps); err != nil || len(ps) != 1 || ps[0].ID != pod.ID {
		t.Errorf("pod ls -o json: %+v %v", ps, err)
	}
	r = e.ok("pod", "get", "hc1")
	t.Logf("pinacle pod get hc1:\n%s", r.stdout)
	if !regexp.MustCompile(`(?m)^State:\s+running$`).MatchString(r.stdout) || !strings.Contains(r.stdout, "8080 -> "+port.URL) {
		t.Errorf("pod get table:\n%s", r)
	}
	if r := e.ok("pod", "get", "hc1", "-o", "yaml"); !strings.Contains(r.stdout, "id: "+pod.ID) {
		t.Errorf("pod get -o yaml:\n%s", r)
	}

	// exec: stdout, stderr and the exit code pass through; -i forwards stdin.
	r = e.run("", "pod", "exec", "hc1", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || !strings.Contains(r.stderr, "err") {
		t.Errorf("exec: want exit 3, stdout out, stderr err; got %s", r)
	}
	// Host flags are the host's only before the command: -o here is sh's.
	r = e.run("hello from stdin", "pod", "exec", "-i", "hc1", "sh", "-c", `cat; echo " $0"`, "-o")
	if r.code != 0 || r.stdout != "hello from stdin -o\n" {
		t.Errorf("exec -i: got %s", r)
	}

	// events and logs.
	r = e.ok("pod", "events", "hc1")
	if !regexp.MustCompile(`(?m)^SEQ\s+TIME\s+POD\s+TYPE\s+CHANGE\s+REASON$`).MatchString(r.stdout) || !strings.Contains(r.stdout, "-> running") {
		t.Errorf("pod events:\n%s", r)
	}
	e.ok("pod", "logs", "hc1", "web")
	if r := e.run("", "pod", "logs", "nosuch"); r.code != 3 {
		t.Errorf("logs of a missing pod: want exit 3, got %s", r)
	}

	// Errors keep their code: text, and JSON under -o json.
	r = e.run("", "pod", "get", "nosuch")
	if r.code != 3 || !strings.HasPrefix(r.stderr, "Error (not_found): ") {
		t.Errorf("get of a missing pod: want exit 3 and Error (not_found), got %s", r)
	}
	r = e.run("", "pod", "get", "nosuch", "-o", "json")
	var ebody struct{ Code, Message string }
	if err := json.Unmarshal([]byte(r.stderr), &ebody); r.code != 3 || err != nil || ebody.Code != "not_found" || ebody.Message == "" {
		t.Errorf("get -o json of a missing pod: want exit 3 and {code: not_found}, got %s", r)
	}
	if r := e.run("", "pod", "create", "-f", filepath.Join(e.dir, "missing.yaml")); r.code != 3 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("create -f of a missing host file: want exit 3, got %s", r)
	}
	if r := e.run("", "pod", "create", "-f", spec); r.code != 4 || !strings.Contains(r.stderr, "Error (already_exists): ") {
		t.Errorf("second create of hc1: want exit 4 already_exists, got %s", r)
	}

	// stop, then delete.
	r = e.ok("pod", "stop", "hc1", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &pod); err != nil || pod.State != "stopped" {
		t.Errorf("pod stop: %+v %v\n%s", pod, err, r)
	}
	r = e.ok("pod", "delete", "hc1")
	if strings.TrimSpace(r.stdout) != "deleted hc1" && strings.TrimSpace(r.stdout) != "deleted "+pod.ID {
		t.Errorf("pod delete:\n%s", r)
	}
	if r := e.ok("pod", "ls", "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("pods left after delete:\n%s", r)
	}
	if r := e.run("", "pod", "delete", "hc1"); r.code != 3 {
		t.Errorf("delete of a deleted pod: want exit 3, got %s", r)
	}
	stopDaemon()
}

// TestUsageErrors: mistyped commands, missing subcommands and arguments,
// unknown flags, both the host's own (vm) and the node's (forwarded, with
// the node's usage error shown as the host's): exit 2, a message naming
// the mistake and what was meant, never help with exit 0.
func TestUsageErrors(t *testing.T) {
	e := newEnv(t, true)
	tmpl, err := filepath.Abs("../../lima.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e.ok("vm", "up", "--template", tmpl) // forwarded commands need a running (stand-in) VM
	for _, tc := range []struct {
		args []string
		want []string // substrings of stderr
	}{
		{[]string{"vmm", "up"}, []string{`Error (usage): unknown command "vmm" for "pinacle"; did you mean "vm"?`, "Run 'pinacle --help' for usage."}},
		{[]string{"vm", "creat"}, []string{`Error (usage): unknown command "creat" for "vm"; did you mean "create"?`, "Run 'pinacle vm --help' for usage."}},
		{[]string{"vm"}, []string{"Error (usage): vm: missing command: want one of create, delete, start, status, stop, up"}},
		{nil, []string{"Error (usage): pinacle: missing command: want one of"}},
		{[]string{"vm", "status", "extra"}, []string{`Error (usage): vm status takes no arguments, got ["extra"]`, "Run 'pinacle vm status --help' for usage."}},
		{[]string{"vm", "create", "--cpu", "3"}, []string{`Error (usage): vm create: unknown flag: --cpu; did you mean "--cpus"?`}},
		{[]string{"pod", "frobnicate", "x"}, []string{`Error (usage): unknown command "frobnicate" for "pod"; want one of create,`, "Run 'pinacle pod --help' for usage."}},
		{[]string{"pod", "hibernat", "x"}, []string{`Error (usage): unknown command "hibernat" for "pod"; did you mean "hibernate"?`, "Run 'pinacle pod --help' for usage."}},
		{[]string{"pod", "gett", "web"}, []string{`Error (usage): unknown command "gett" for "pod"; did you mean "get"?`}},
		{[]string{"pod"}, []string{"Error (usage): pod: missing command: want one of create,", "Run 'pinacle pod --help' for usage."}},
		{[]string{"pod", "get"}, []string{"Error (usage): pod get: accepts 1 arg(s), received 0"}},
		{[]string{"image", "lss"}, []string{`Error (usage): unknown command "lss" for "image"; did you mean "ls"?`}},
		{[]string{"pod", "ls", "--sockt", "x"}, []string{`Error (usage): pod ls: unknown flag: --sockt; did you mean "--socket"?`}},
	} {
		r := e.run("", tc.args...)
		if r.code != 2 {
			t.Errorf("pinacle %v: want exit 2 (usage), got %s", tc.args, r)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("pinacle %v: stderr lacks %q: %s", tc.args, w, r)
			}
		}
		if r.stdout != "" {
			t.Errorf("pinacle %v printed on stdout (help?): %s", tc.args, r)
		}
	}
	// Under -o json the node's usage error passes through as its JSON.
	r := e.run("", "pod", "gett", "web", "-o", "json")
	var body struct{ Code, Message string }
	if err := json.Unmarshal([]byte(r.stderr), &body); r.code != 2 || err != nil || body.Code != "usage" || !strings.Contains(body.Message, `did you mean "get"?`) {
		t.Errorf("pod gett -o json: want exit 2 and {code: usage}, got %s", r)
	}
	// Help is still help.
	for _, args := range [][]string{{"--help"}, {"vm", "--help"}, {"pod", "--help"}} {
		if r := e.ok(args...); !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("pinacle %v: no help: %s", args, r)
		}
	}
}

// start runs the host CLI in the background; lines gets each line of its
// stderr as it is written, done its result once it exits.
func (e *env) start(args ...string) (lines <-chan string, done <-chan result) {
	e.t.Helper()
	limactl, err := filepath.Abs("testdata/limactl")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "pinacle"), args...)
	cmd.Env = append(os.Environ(), "LIMACTL="+limactl, "FAKE_LIMA_STATE="+e.limaDir,
		"PATH="+e.bin+":"+os.Getenv("PATH"), "PINACLE_VM=", "PINACLE_NODE_SOCKET=", "PINACLE_NODE_DATA_ROOT=")
	cmd.Env = append(cmd.Env, e.extraEnv...)
	cmd.Dir = e.dir
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	lc := make(chan string, 100)
	dc := make(chan result, 1)
	go func() {
		defer cancel()
		var all strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			select {
			case lc <- sc.Text():
			default:
			}
		}
		close(lc)
		err := cmd.Wait()
		r := result{stdout: stdout.String(), stderr: all.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code = -1
		}
		dc <- r
	}()
	return lc, dc
}

// TestVMCreateProgressAndRetry: limactl's progress (the image download)
// shows while create still runs, not when it ends; a create that fails
// removes the half-made VM, so running it again works.
func TestVMCreateProgressAndRetry(t *testing.T) {
	e := newEnv(t, false)
	tmpl, err := filepath.Abs("../../lima.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(e.dir, "gate")
	e.extraEnv = []string{"FAKE_LIMA_CREATE_GATE=" + gate, "FAKE_LIMA_CREATE_FAIL=1"}
	lines, done := e.start("vm", "up", "--template", tmpl)
	// The stand-in waits at the gate after printing progress: the line
	// must reach us while it waits.
	timeout := time.After(time.Minute)
	for seen := false; !seen; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("vm up ended without showing limactl's progress while it ran: %s", <-done)
			}
			seen = strings.Contains(l, "Downloading the image") || strings.Contains(l, "MiB / 585.56 MiB")
		case <-timeout:
			t.Fatal("no progress from limactl create within a minute while it was running (buffered?)")
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("vm up did not end after the stand-in's create failed")
	}
	if r.code != 7 || !strings.Contains(r.stderr, "connection reset by peer") || !strings.Contains(r.stderr, `the half-made VM "pinacle" was removed: run the command again to retry`) {
		t.Errorf("failed create: want exit 7, limactl's error and the removal, got %s", r)
	}
	c := e.calls()
	if c[len(c)-1] != "delete --force pinacle" {
		t.Errorf("after the failed create, limactl calls end with %q, want delete --force pinacle", c[len(c)-1])
	}
	if r := e.run("", "vm", "status"); r.code != 3 {
		t.Errorf("vm status after the failed create: want exit 3 (no VM), got %s", r)
	}

	// The retry simply works.
	e.extraEnv = nil
	r = e.ok("vm", "up", "--template", tmpl)
	if !strings.Contains(r.stderr, "100.00%") || !strings.Contains(r.stderr, "VM pinacle is running") {
		t.Errorf("retried vm up: %s", r)
	}
	// A VM that exists is never deleted by a create.
	if r := e.run("", "vm", "create", "--template", tmpl); r.code != 4 {
		t.Errorf("create of an existing VM: want exit 4, got %s", r)
	}
	if r := e.ok("vm", "status", "-o", "json"); !strings.Contains(r.stdout, `"status": "Running"`) {
		t.Errorf("the VM after a refused create: %s", r)
	}

	// A half-made VM left by a create that could not clean up (the CLI was
	// killed mid-download): vm up says what to do instead of starting it.
	broken := filepath.Join(e.limaDir, "vm-killed")
	if err := os.WriteFile(broken, []byte(`{"name":"killed","status":"Broken","message":"disk missing"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.run("", "vm", "up", "--vm", "killed", "--template", tmpl)
	if r.code != 6 || !strings.Contains(r.stderr, `VM "killed" is broken (disk missing): remove it with pinacle vm delete --force, then run pinacle vm up again`) {
		t.Errorf("vm up on a broken VM: want exit 6 and the way out, got %s", r)
	}
	e.ok("vm", "delete", "--force", "--vm", "killed")
	e.ok("vm", "up", "--vm", "killed", "--template", tmpl)
}

// TestVMCreateRepo: --repo is the mounted repository, passed to lima.yaml
// as a param (data), and the directory whose bin/ is checked for the node
// binaries; --runsc-release chooses gVisor's release.
func TestVMCreateRepo(t *testing.T) {
	e := newEnv(t, false)
	tmpl, err := filepath.Abs("../../lima.yaml")
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(e.dir, "my repo's $(copy)")
	if err := os.MkdirAll(filepath.Join(repo, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.ok("vm", "create", "--vm", "r1", "--template", tmpl, "--repo", repo)
	if !strings.Contains(r.stderr, "warning: ["+filepath.Join(repo, "bin", "pinacle-node-linux-arm64")) {
		t.Errorf("create with a --repo without binaries: want the warning to name %s/bin, got %s", repo, r)
	}
	want := fmt.Sprintf("create --name=r1 --tty=false --set .param.PinacleRepo = %q %s", repo, tmpl)
	if c := e.calls(); c[len(c)-1] != want {
		t.Errorf("limactl call:\n got %q\nwant %q", c[len(c)-1], want)
	}
	// The VM needs the node and pods' init of its architecture.
	for _, c := range []string{"node", "init"} {
		if err := os.WriteFile(filepath.Join(repo, "bin", "pinacle-"+c+"-linux-amd64"), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r = e.ok("vm", "create", "--vm", "r2", "--template", tmpl, "--repo", repo, "--runsc-release", "20250715.0")
	if strings.Contains(r.stderr, "warning:") {
		t.Errorf("create with the binary in --repo's bin/: unexpected warning: %s", r)
	}
	want = fmt.Sprintf("create --name=r2 --tty=false --set .param.PinacleRepo = %q | .param.RunscRelease = \"20250715.0\" %s", repo, tmpl)
	if c := e.calls(); c[len(c)-1] != want {
		t.Errorf("limactl call:\n got %q\nwant %q", c[len(c)-1], want)
	}
	if r := e.run("", "vm", "create", "--vm", "r3", "--template", tmpl, "--runsc-release", "../../x"); r.code != 5 || !strings.Contains(r.stderr, "--runsc-release") {
		t.Errorf("create with a bad --runsc-release: want exit 5, got %s", r)
	}
	if r := e.run("", "vm", "create", "--vm", "r3", "--template", tmpl, "--repo", filepath.Join(e.dir, "nosuch")); r.code != 3 {
		t.Errorf("create with a missing --repo: want exit 3, got %s", r)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// getThroughGateway opens url with a cookie jar, sending every host name
// to the gateway on 127.0.0.1:port (as a browser resolves *.localhost),
// and returns the body of a 200.
func getThroughGateway(t *testing.T, port int, url string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		}}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
