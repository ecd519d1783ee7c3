package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dnatPackets returns the packet count of the DNAT rule that sends host
// port to ip:8080 (each packet a new connection), or -1 without one.
func dnatPackets(t *testing.T, hostPort int, ip string) int {
	t.Helper()
	out, err := exec.Command("iptables-save", "-c", "-t", "nat").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	re := regexp.MustCompile(`^\[(\d+):\d+\] -A PINACLE-PORTS-\S+ .*--dport ` + strconv.Itoa(hostPort) + ` .*--to-destination ` + regexp.QuoteMeta(ip) + `:8080`)
	for l := range strings.Lines(string(out)) {
		if m := re.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	return -1
}

type portMetrics struct {
	Ports []struct {
		HostPort   int    `json:"hostPort"`
		ConnsTotal uint64 `json:"connsTotal"`
		BytesOut   uint64 `json:"bytesOut"`
	} `json:"ports"`
}

// TestNodePortForwardKernelPath: a running pod's host port is forwarded by
// the kernel (DNAT), closes promptly when the pod stops, comes back on
// start; with ports.kernelForward: false the same works in userspace.
func TestNodePortForwardKernelPath(t *testing.T) {
	d := startDaemon(t)
	p, r := d.create(webSpec("kfast", ""))
	if r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	host := p.Ports[0].External
	url := p.Ports[0].URL
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("port URL %q: want 127.0.0.1 (the test is about loopback)", url)
	}
	before := dnatPackets(t, host, p.IP)
	if before < 0 {
		t.Fatalf("no DNAT rule for host port %d to %s:8080", host, p.IP)
	}
	body, err := httpGet(url+"/big", 10*time.Second)
	if err != nil || len(body) != 4000000 {
		t.Fatalf("GET /big through host port %d: %d bytes, %v", host, len(body), err)
	}
	if n := dnatPackets(t, host, p.IP); n != before+1 {
		t.Errorf("DNAT rule counted %d new connections, want 1: the GET did not take the kernel path", n-before)
	}
	// The counters come from the rules (bytes on the wire, so >= body).
	var m portMetrics
	r = d.cli("pod", "metrics", "kfast", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || len(m.Ports) != 1 {
		t.Fatalf("pod metrics: %v: %s %s", err, r.stdout, r.stderr)
	}
	if m.Ports[0].ConnsTotal < 1 || m.Ports[0].BytesOut < 4000000 {
		t.Errorf("port metrics %+v: want the kernel-forwarded connection and its 4 MB", m.Ports[0])
	}

	if r := d.cli("pod", "stop", "kfast"); r.code != 0 {
		t.Fatalf("stop: exit %d: %s", r.code, r.stderr)
	}
	if n := dnatPackets(t, host, p.IP); n >= 0 {
		t.Error("DNAT rule still present after pod stop")
	}
	// Promptly closed: refused or closed, not a hang until the timeout.
	_, err = httpGet(url+"/index.html", 10*time.Second)
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("GET after stop: %v, want a prompt refusal", err)
	}

	if r := d.cli("pod", "start", "kfast"); r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	p2, _ := d.get("kfast")
	if body, err := httpGet(url+"/index.html", 5*time.Second); err != nil || strings.TrimSpace(body) != "kfast" {
		t.Fatalf("GET after start = %q, %v", body, err)
	}
	if n := dnatPackets(t, host, p2.IP); n != 1 {
		t.Errorf("after start the DNAT rule to %s counted %d connections, want 1", p2.IP, n)
	}

	// Userspace only: no rules, the relay still serves.
	du := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "listenAddr: 127.0.0.1}", "listenAddr: 127.0.0.1, kernelForward: false}", 1)
	}, nil)
	pu, r := du.create(webSpec("kslow", ""))
	if r.code != 0 {
		t.Fatalf("create (userspace): exit %d: %s", r.code, r.stderr)
	}
	if body, err := httpGet(pu.Ports[0].URL+"/index.html", 5*time.Second); err != nil || strings.TrimSpace(body) != "kslow" {
		t.Fatalf("GET through the userspace relay = %q, %v", body, err)
	}
	if n := dnatPackets(t, pu.Ports[0].External, pu.IP); n >= 0 {
		t.Errorf("kernelForward: false, yet a DNAT rule exists for port %d", pu.Ports[0].External)
	}
}
