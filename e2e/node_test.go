package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/pods"
	"github.com/pinacle/pinacle-node/podspec"
)

func TestNodePodLifecycle(t *testing.T) {
	d := startDaemon(t)
	p, r := d.create(webSpec("life", ""))
	if r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	if p.State != "running" || p.IP == "" || len(p.Ports) != 1 || p.Ports[0].External < d.portMin || p.Ports[0].External > d.portMax {
		t.Fatalf("created pod = %+v", p)
	}
	url := p.Ports[0].URL + "/index.html"
	if body, err := httpGet(url, 5*time.Second); err != nil || strings.TrimSpace(body) != "life" {
		t.Fatalf("GET %s through the host port = %q, %v", url, body, err)
	}
	// The sandbox boots unthrottled; the tier's CPU quota is on once the
	// pod runs.
	lim, err := podspec.Resources{Tier: "dev.small", MemoryMB: 256, StorageMB: 1024}.Limits()
	if err != nil {
		t.Fatal(err)
	}
	if q, err := cgroupCPUQuota("/pinacle/" + p.ID); err != nil || q != lim.CPUQuotaUs {
		t.Fatalf("pod's CPU quota = %d µs per period (%v), want the tier's %d", q, err, lim.CPUQuotaUs)
	}
	if body, err := httpGet("http://"+p.IP+":8080/index.html", 5*time.Second); err != nil || strings.TrimSpace(body) != "life" {
		t.Fatalf("GET at the pod IP = %q, %v", body, err)
	}
	// exec passes the exit code and output through.
	r = d.cli("pod", "exec", "life", "--", "sh", "-c", "cat /srv/index.html; exit 5")
	if r.code != 5 || strings.TrimSpace(r.stdout) != "life" {
		t.Fatalf("exec: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	// The service's own output (expanded by its shell, so not the command
	// line the supervisor logs) must reach `pod logs`.
	if r := d.cli("pod", "logs", "life", "web"); r.code != 0 || !strings.Contains(r.stdout, "serving from life") {
		t.Fatalf("logs: exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
	if r := d.cli("pod", "health", "life", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"healthy": true`) {
		t.Fatalf("health: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if m := podMetrics(t, d, "life"); m.Sandbox == nil || !m.Sandbox.CgroupsAvailable || m.Sandbox.MemoryUsage == 0 ||
		m.Sandbox.MemoryLimit != uint64(lim.MemoryBytes) || m.Sandbox.Pids == 0 || m.Sandbox.CPUUsageNanos == 0 {
		t.Fatalf("metrics = %+v: want the sandbox's cgroup figures, memory limit %d", m.Sandbox, lim.MemoryBytes)
	}
	// Writes in the workspace persist across stop and start.
	if r := d.cli("pod", "exec", "life", "--", "sh", "-c", "echo kept > /workspace/note"); r.code != 0 {
		t.Fatalf("write: %s", r.stderr)
	}
	// Start on a running pod succeeds without doing anything.
	if r := d.cli("pod", "start", "life"); r.code != 0 {
		t.Fatalf("start of a running pod: exit %d: %s", r.code, r.stderr)
	}
	if r := d.cli("pod", "stop", "life"); r.code != 0 {
		t.Fatalf("stop: exit %d: %s", r.code, r.stderr)
	}
	if r := d.cli("pod", "stop", "life"); r.code != 0 {
		t.Fatalf("stop of a stopped pod: exit %d: %s", r.code, r.stderr)
	}
	if _, err := httpGet(url, 3*time.Second); err == nil {
		t.Fatal("host port still answers for a stopped pod")
	}
	// exec on a stopped pod is a conflict that names the state.
	r = d.cli("pod", "exec", "-o", "json", "life", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "conflict") || !strings.Contains(r.stderr, "stopped") {
		t.Fatalf("exec on stopped pod: exit %d: %s", r.code, r.stderr)
	}
	if r := d.cli("pod", "start", "life"); r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	p2, _ := d.get("life")
	if p2.State != "running" || p2.Ports[0].External != p.Ports[0].External {
		t.Fatalf("after start: %+v; want running on host port %d", p2, p.Ports[0].External)
	}
	if body, err := httpGet(url, 5*time.Second); err != nil || strings.TrimSpace(body) != "life" {
		t.Fatalf("GET after restart = %q, %v", body, err)
	}
	if r := d.cli("pod", "exec", "life", "--", "cat", "/workspace/note"); strings.TrimSpace(r.stdout) != "kept" {
		t.Fatalf("workspace after stop/start: %q %s", r.stdout, r.stderr)
	}
	r = d.cli("pod", "events", "life", "-o", "json")
	for _, want := range []string{`"to":"provisioning"`, `"to":"stopping"`, `"to":"stopped"`, `"to":"starting"`} {
		if !strings.Contains(strings.ReplaceAll(r.stdout, " ", ""), want) {
			t.Errorf("events lack %s:\n%s", want, r.stdout)
		}
	}
	if r := d.cli("pod", "delete", "life"); r.code != 0 {
		t.Fatalf("delete: exit %d: %s", r.code, r.stderr)
	}
	r = d.cli("pod", "get", "life", "-o", "json")
	if r.code != 3 || !strings.Contains(r.stderr, `"code":"not_found"`) {
		t.Fatalf("get after delete: exit %d: %s", r.code, r.stderr)
	}
}

func TestNodeBadSpecNamesTheField(t *testing.T) {
	d := startDaemon(t)
	_, r := d.create("name: bad\nbaseImage: " + busybox + "\nnetwork:\n  ports: [{name: web, internal: 70000}]\n")
	if r.code != 5 || !strings.Contains(r.stderr, "network.ports[0].internal") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	_, r = d.create("name: bad\nbaseImage: " + busybox + "\nservicez: []\n")
	if r.code != 5 || !strings.Contains(r.stderr, "servicez") {
		t.Fatalf("unknown field: exit %d: %s", r.code, r.stderr)
	}
	if r := d.cli("pod", "ls", "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("a rejected spec left a pod: %s", r.stdout)
	}
}

func TestNodeServiceNeverHealthyFailsPod(t *testing.T) {
	d := startDaemon(t)
	spec := fmt.Sprintf(`name: sick
baseImage: %s
resources: {memoryMb: 256, storageMb: 1024}
services:
  - name: app
    command: [sh, -c, "echo starting app; echo cannot bind >&2; sleep 1000"]
    healthCheck: {type: tcp, port: 9999, interval: 300ms, timeout: 200ms, retries: 1, startPeriod: 1s}
`, busybox)
	_, r := d.create(spec)
	if r.code == 0 {
		t.Fatal("create of a pod whose service never gets healthy succeeded")
	}
	if !strings.Contains(r.stderr, "service app") || !strings.Contains(r.stderr, "cannot bind") {
		t.Fatalf("error does not name the service and its last log lines: %s", r.stderr)
	}
	p, _ := d.get("sick")
	if p.State != "failed" || !strings.Contains(p.Reason, "service app") {
		t.Fatalf("pod = %+v; want failed with the service named", p)
	}
	// Deleting a failed pod always succeeds.
	if r := d.cli("pod", "delete", "sick"); r.code != 0 {
		t.Fatalf("delete failed pod: %s", r.stderr)
	}
}

func TestNodeRestartAdoptsRunningPods(t *testing.T) {
	d := startDaemon(t)
	p, r := d.create(webSpec("adopt", ""))
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	d.kill()
	// The sandbox lives on while the daemon is gone.
	if body, err := httpGet("http://"+p.IP+":8080/index.html", 5*time.Second); err != nil || strings.TrimSpace(body) != "adopt" {
		t.Fatalf("pod unreachable while the daemon is down: %q %v", body, err)
	}
	d.start()
	poll(t, 20*time.Second, "forwarder back after restart", func() bool {
		body, err := httpGet(p.Ports[0].URL+"/index.html", 2*time.Second)
		return err == nil && strings.TrimSpace(body) == "adopt"
	})
	if r := d.cli("pod", "events", "adopt", "-o", "json"); !strings.Contains(r.stdout, "adopted") {
		t.Fatalf("no adoption event: %s", r.stdout)
	}
	// SIGTERM is a clean exit, and pods keep running through it too.
	d.stop()
	if _, err := httpGet("http://"+p.IP+":8080/index.html", 5*time.Second); err != nil {
		t.Fatalf("pod died with a clean daemon stop: %v", err)
	}
	d.start()
	p2, _ := d.get("adopt")
	if p2.State != "running" {
		t.Fatalf("after restart: %+v", p2)
	}
	// Adopted, the sandbox is not the daemon's child: the node watches it
	// through its pidfd, not with a `runsc wait` process (24 MB) per pod.
	if w := procsWithArgs("wait", p2.ID); len(w) > 0 {
		t.Fatalf("runsc wait processes for an adopted pod: %v", w)
	}
	// Its death is still seen, and the pod comes back.
	out, err := exec.Command("runsc", "--root", d.dir+"/runsc", "state", p2.ID).Output()
	if err != nil {
		t.Fatalf("runsc state: %v", err)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Pid <= 0 {
		t.Fatalf("runsc state: %q %v", out, err)
	}
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(t, 90*time.Second, "the adopted sandbox's death recorded and the pod running again", func() bool {
		ev := d.cli("pod", "events", "adopt", "-o", "json").stdout
		p3, _ := d.get("adopt")
		return strings.Contains(ev, "status is unknown") && p3.State == "running"
	})
}

// procsWithArgs lists the command lines of processes whose arguments
// include every one of args.
func procsWithArgs(args ...string) []string {
	ents, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		have := map[string]bool{}
		for _, a := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			have[a] = true
		}
		all := true
		for _, a := range args {
			all = all && have[a]
		}
		if all {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestNodeCrashSafety kills the daemon (SIGKILL, at a named point) in the
// middle of create, stop, delete, hibernate and wake, starts it again,
// and checks that the pod record survives and the operation is finished
// or undone. A hibernate the crash interrupted ends running (the sandbox
// still ran) or hibernated (the checkpoint was complete); either way the
// pod serves through its host port.
func TestNodeCrashSafety(t *testing.T) {
	d := startDaemon(t)
	for _, op := range []string{"create", "stop", "delete", "hibernate", "wake"} {
		for i, point := range pods.CrashPoints[op] {
			name := fmt.Sprintf("crash-%s-%d", op, i)
			t.Run(op+"@"+point, func(t *testing.T) {
				if op != "create" {
					if _, r := d.create(webSpec(name, "")); r.code != 0 {
						t.Fatalf("create: %s", r.stderr)
					}
				}
				if op == "wake" {
					if r := d.cli("pod", "hibernate", name); r.code != 0 {
						t.Fatalf("hibernate: %s", r.stderr)
					}
				}
				d.stop()
				d.start("PINACLE_CRASH_AT=" + point)
				switch op {
				case "create":
					d.create(webSpec(name, ""))
				default:
					d.cli("pod", op, name)
				}
				if !d.exited(60 * time.Second) {
					t.Fatalf("daemon did not reach crash point %s", point)
				}
				d.start()
				want := map[string]string{"create": "running", "stop": "stopped", "delete": "", "hibernate": "running|hibernated", "wake": "running"}[op]
				poll(t, 60*time.Second, fmt.Sprintf("pod %s %q after recovery", name, want), func() bool {
					p, r := d.get(name)
					if want == "" {
						return r.code == 3
					}
					return r.code == 0 && slices.Contains(strings.Split(want, "|"), p.State)
				})
				if op == "create" || op == "hibernate" || op == "wake" {
					p, _ := d.get(name)
					if body, err := httpGet(p.Ports[0].URL+"/index.html", 10*time.Second); err != nil || strings.TrimSpace(body) != name {
						t.Fatalf("recovered pod does not serve: %q %v", body, err)
					}
				}
				if want != "" {
					if r := d.cli("pod", "delete", name); r.code != 0 {
						t.Fatalf("delete: %s", r.stderr)
					}
				}
			})
		}
	}
}

func TestNodeIsolationAndEgress(t *testing.T) {
	d := startDaemon(t)
	inet := newInternet(t)
	a, r := d.create(webSpec("iso-a", ""))
	if r.code != 0 {
		t.Fatalf("create a: %s", r.stderr)
	}
	b, r := d.create(webSpec("iso-b", fmt.Sprintf("  egress:\n    deny: [{cidr: %s/32}]\n    allow: [{cidr: %s/32, ports: [80], protocol: tcp}]\n", inet.public, inet.private)))
	if r.code != 0 {
		t.Fatalf("create b: %s", r.stderr)
	}
	// wget says whether pod reached url. Anything other than a clean
	// answer or a failure to connect (refused, unreachable, timed out)
	// fails the test, so a broken probe never reads as "blocked".
	wget := func(pod, url string) bool {
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
	// The host reaches both pods; the pods cannot reach each other.
	for _, p := range []podView{a, b} {
		if _, err := httpGet("http://"+p.IP+":8080/index.html", 5*time.Second); err != nil {
			t.Fatalf("host cannot reach %s: %v", p.Name, err)
		}
	}
	if wget("iso-a", "http://"+b.IP+":8080/index.html") || wget("iso-b", "http://"+a.IP+":8080/index.html") {
		t.Error("one pod reached another")
	}
	// Nor the host's own services, on any of its addresses.
	hostLn, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nhost\n"))
			c.Close()
		}
	}()
	port := hostLn.Addr().(*net.TCPAddr).Port
	gw := gateway(t, d, "iso-a")
	if wget("iso-a", fmt.Sprintf("http://%s:%d/", gw, port)) {
		t.Errorf("pod reached a host service on its gateway %s", gw)
	}
	if wget("iso-a", fmt.Sprintf("http://%s:%d/", inet.hostSide, port)) {
		t.Errorf("pod reached a host service on host address %s", inet.hostSide)
	}
	// Default egress: the internet yes, private ranges no.
	if !wget("iso-a", "http://"+inet.public+"/index.html") {
		t.Error("default policy blocked the internet")
	}
	if wget("iso-a", "http://"+inet.private+"/index.html") {
		t.Error("default policy allowed a private range")
	}
	// Pod b: its deny rule blocks the internet host, its allow rule opens the private one.
	if wget("iso-b", "http://"+inet.public+"/index.html") {
		t.Error("deny rule did not block")
	}
	if !wget("iso-b", "http://"+inet.private+"/index.html") {
		t.Error("allow rule did not open a private address")
	}
}

// gateway reads the pod's default gateway from inside it.
func gateway(t *testing.T, d *daemon, pod string) string {
	r := d.cli("pod", "exec", pod, "--", "sh", "-c", "ip route | awk '/default/ {print $3}'")
	gw := strings.TrimSpace(r.stdout)
	if net.ParseIP(gw) == nil {
		t.Fatalf("no default gateway in pod %s: %q %s", pod, r.stdout, r.stderr)
	}
	return gw
}

func TestNodeBandwidthLimit(t *testing.T) {
	d := startDaemon(t)
	const rate = 16_000_000 // bits/s
	p, r := d.create(webSpec("bw", fmt.Sprintf("  bandwidth: {egressRate: %d, egressBurst: 64000}\n", rate)))
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	t0 := time.Now()
	body, err := httpGet("http://"+p.IP+":8080/big", 60*time.Second)
	el := time.Since(t0)
	if err != nil || len(body) != 4000000 {
		t.Fatalf("download: %d bytes, %v", len(body), err)
	}
	got := float64(len(body)*8) / el.Seconds()
	t.Logf("egress limit %d bit/s, measured %.0f bit/s (%.2fx)", rate, got, got/rate)
	// The cap must hold (a burst of 64 kbit cannot lift 4 MB past it by 10%).
	if got > rate*1.1 {
		t.Fatalf("measured %.0f bit/s above the %d bit/s limit", got, rate)
	}
	// The 4 MB went out of the sandbox, so its CPU and memory use show.
	if m := podMetrics(t, d, "bw"); m.Sandbox == nil || m.Sandbox.CPUUsageNanos == 0 || m.Sandbox.MemoryUsage == 0 {
		t.Fatalf("metrics after the download = %+v", m.Sandbox)
	}
}

// podMetrics runs `pod metrics NAME -o json` and decodes it.
func podMetrics(t *testing.T, d *daemon, name string) api.Metrics {
	t.Helper()
	r := d.cli("pod", "metrics", name, "-o", "json")
	var m api.Metrics
	if r.code != 0 {
		t.Fatalf("pod metrics %s: exit %d: %s", name, r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("pod metrics %s -o json: %v: %s", name, err, r.stdout)
	}
	return m
}

// cgroupCPUQuota reads a cgroup's CFS quota (µs per period), cgroup v1 or
// v2; -1 is unlimited.
func cgroupCPUQuota(path string) (int64, error) {
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", path, "cpu.cfs_quota_us")); err == nil {
		return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", path, "cpu.max"))
	if err != nil {
		return 0, err
	}
	q, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if q == "max" {
		return -1, nil
	}
	return strconv.ParseInt(q, 10, 64)
}

// warmEntries lists the daemon's unclaimed warm networks (their records).
func (d *daemon) warmEntries() []string {
	m, _ := filepath.Glob(filepath.Join(d.dir, "data", "netns", "pods", "warm-*.json"))
	return m
}

// The daemon keeps default networks ready; a pod with the default network
// takes one (and works: reachable through its port), a pod with its own
// egress rules gets a network made for it, the pool refills, and after a
// SIGKILL the next daemon replaces the entries it cannot trust.
func TestNodeWarmNetworkPool(t *testing.T) {
	d := startDaemon(t)
	poll(t, 30*time.Second, "2 warm networks", func() bool { return len(d.warmEntries()) == 2 })
	netnsOf := func(id string) string { // from the network layer's record of the pod
		b, err := os.ReadFile(filepath.Join(d.dir, "data", "netns", "pods", id+".json"))
		var v struct {
			NetnsPath string `json:"netnsPath"`
		}
		if err != nil || json.Unmarshal(b, &v) != nil || v.NetnsPath == "" {
			t.Fatalf("network record of %s: %v: %s", id, err, b)
		}
		return v.NetnsPath
	}
	p, r := d.create(webSpec("warmweb", ""))
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	if ns := netnsOf(p.ID); !strings.Contains(ns, "/pinacle-warm-") {
		t.Errorf("default pod's netns %s: want one from the warm pool", ns)
	}
	if body, err := httpGet(p.Ports[0].URL+"/index.html", 5*time.Second); err != nil || strings.TrimSpace(body) != "warmweb" {
		t.Fatalf("GET through the host port of a pod on a warm network = %q, %v", body, err)
	}
	q, r := d.create(webSpec("ownnet", "  egress: {deny: [{cidr: 198.51.100.0/24}]}\n"))
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	if ns := netnsOf(q.ID); !strings.HasSuffix(ns, "/pinacle-"+q.ID) {
		t.Errorf("pod with egress rules got netns %s, want its own", ns)
	}
	poll(t, 30*time.Second, "the pool refilled to 2", func() bool { return len(d.warmEntries()) == 2 })
	before := d.warmEntries()

	d.kill()
	d.start()
	poll(t, 30*time.Second, "2 fresh warm networks after a crash", func() bool {
		now := d.warmEntries()
		return len(now) == 2 && !slices.Contains(now, before[0]) && !slices.Contains(now, before[1])
	})
	if body, err := httpGet(p.Ports[0].URL+"/index.html", 5*time.Second); err != nil || strings.TrimSpace(body) != "warmweb" {
		t.Fatalf("after the restart, GET = %q, %v", body, err)
	}
}
