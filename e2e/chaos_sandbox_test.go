package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSandboxKilledFromOutside SIGKILLs a pod's runsc-sandbox from
// outside the node, as the chaos test does at random. The pod goes
// failed and the node brings it up again, up to 3 times; after the 4th
// death it stays failed. A failed pod has nothing of its sandbox left (no
// sandbox, gofer or runsc process, no runsc container, no cgroup, no
// mount under its directory, no network, no listener on its host port)
// and keeps what a stopped pod keeps: its record, its files and its host
// port. Its delete is then clean (the test's leak check).
func TestSandboxKilledFromOutside(t *testing.T) {
	d := startDaemon(t)
	p, r := d.create(webSpec("outside", ""))
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	port := p.Ports[0].External
	sandbox := 0
	for death := 1; death <= 4; death++ {
		// Running and serving from a sandbox other than the one killed.
		poll(t, 60*time.Second, fmt.Sprintf("pod serving before death %d", death), func() bool {
			now, _ := d.get(p.ID)
			pid := runscPid(d, p.ID, "runsc-sandbox")
			body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/index.html", port), 2*time.Second)
			if now.State != "running" || err != nil || strings.TrimSpace(body) != "outside" || pid == 0 || pid == sandbox {
				return false
			}
			sandbox = pid
			return true
		})
		if err := syscall.Kill(sandbox, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, 30*time.Second, "pod failed after its 4th death", func() bool {
		now, _ := d.get(p.ID)
		return now.State == "failed"
	})
	// Recorded failed first, then brought down: the host converges.
	var left []string
	deadline := time.Now().Add(30 * time.Second)
	for left = sandboxRemnants(t, d, p.ID, port); len(left) > 0 && time.Now().Before(deadline); left = sandboxRemnants(t, d, p.ID, port) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("failed pod %s keeps:\n%s", p.ID, strings.Join(left, "\n"))
	}
	now, _ := d.get(p.ID)
	if now.State != "failed" || !strings.Contains(now.Reason, "sandbox") {
		t.Errorf("after the 4th death: state %q, reason %q; want failed, naming the sandbox", now.State, now.Reason)
	}
	if len(now.Ports) == 0 || now.Ports[0].External != port {
		t.Errorf("failed pod's ports %+v: want host port %d kept", now.Ports, port)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "data", "pods", p.ID)); err != nil {
		t.Errorf("failed pod's files: %v", err)
	}
	if r := d.cli("pod", "delete", p.ID); r.code != 0 {
		t.Fatalf("delete: %s", r.stderr)
	}
	if left := sandboxRemnants(t, d, p.ID, port); len(left) > 0 {
		t.Errorf("after delete:\n%s", strings.Join(left, "\n"))
	}
	if _, err := os.Stat(filepath.Join(d.dir, "data", "pods", p.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted pod's files: %v", err)
	}
}

// runscPid returns the pid of d's runsc process of kind (argv[0]) for pod
// id, or 0.
func runscPid(d *daemon, id, kind string) int {
	for pid, cmd := range runscProcsOf(d, id) {
		if argv0, _, _ := strings.Cut(cmd, " "); argv0 == kind {
			return pid
		}
	}
	return 0
}

// runscProcsOf lists d's runsc processes (CLI, sandbox, gofer) whose
// command line names pod id.
func runscProcsOf(d *daemon, id string) map[int]string {
	ents, _ := os.ReadDir("/proc")
	out := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte("--root="+d.dir+"/runsc")) || !bytes.Contains(b, []byte(id)) {
			continue
		}
		out[pid] = strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
	}
	return out
}

// sandboxRemnants lists what of a sandbox the host still holds for pod id
// of d: runsc processes, the runsc container, cgroups, mounts under the
// pod's directory, its network record, a listener on its host port.
func sandboxRemnants(t *testing.T, d *daemon, id string, port int) []string {
	t.Helper()
	var left []string
	for pid, cmd := range runscProcsOf(d, id) {
		left = append(left, fmt.Sprintf("process %d: %s", pid, cmd))
	}
	out, err := exec.Command("runsc", "--root", d.dir+"/runsc", "list", "-quiet").Output()
	if err != nil {
		t.Fatalf("runsc list: %v", err)
	}
	if strings.Contains(string(out), id) {
		left = append(left, "runsc container "+id)
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/pinacle/" + id)
	cg2, _ := filepath.Glob("/sys/fs/cgroup/pinacle/" + id)
	for _, c := range append(cgs, cg2...) {
		left = append(left, "cgroup "+c)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, filepath.Join(d.dir, "data", "pods", id)) {
			left = append(left, "mount "+l)
		}
	}
	if _, err := os.Stat(filepath.Join(d.dir, "data", "netns", "pods", id+".json")); err == nil {
		left = append(left, "network record "+id)
	}
	listening, err := listeningPorts()
	if err != nil {
		t.Fatal(err)
	}
	if listening[port] {
		left = append(left, fmt.Sprintf("listener on host port %d", port))
	}
	return left
}
