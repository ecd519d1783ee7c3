package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// listeners returns the local addresses listening on TCP port (ss).
func listeners(t *testing.T, port int) []string {
	t.Helper()
	out, err := exec.Command("ss", "-Hltn", fmt.Sprintf("sport = :%d", port)).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var addrs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			addrs = append(addrs, f[3])
		}
	}
	return addrs
}

// TestGatewayRawPortsLoopbackOnly: with node.yaml's defaults, a pod's host
// ports and the gateway listen on 127.0.0.1 only, a port the spec marks
// public on 0.0.0.0, and the API socket is root's, mode 0660.
func TestGatewayRawPortsLoopbackOnly(t *testing.T) {
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, ", listenAddr: 127.0.0.1}", "}", 1) // the default
	}, nil)
	spec := strings.Replace(webSpec("raw", ""), "ports: [{name: web, internal: 8080}]",
		"ports: [{name: web, internal: 8080}, {name: pub, internal: 8081, public: true}]", 1)
	p, r := d.create(spec)
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	ports := map[string]int{}
	for _, port := range p.Ports {
		ports[port.Name] = port.External
	}
	if got := listeners(t, ports["web"]); len(got) != 1 || got[0] != fmt.Sprintf("127.0.0.1:%d", ports["web"]) {
		t.Errorf("web's host port listens on %v, want 127.0.0.1 only", got)
	}
	// Go binds 0.0.0.0 as the dual-stack wildcard, which ss shows as *.
	if got := listeners(t, ports["pub"]); len(got) != 1 || (got[0] != fmt.Sprintf("0.0.0.0:%d", ports["pub"]) && got[0] != fmt.Sprintf("*:%d", ports["pub"])) {
		t.Errorf("the public port listens on %v, want every address", got)
	}
	if got := listeners(t, d.gwPort); len(got) != 1 || got[0] != fmt.Sprintf("127.0.0.1:%d", d.gwPort) {
		t.Errorf("the gateway listens on %v, want 127.0.0.1 only", got)
	}
	if body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/index.html", ports["web"]), 5e9); err != nil || !strings.Contains(body, "raw") {
		t.Errorf("web on loopback: %q %v", body, err)
	}
	if ip := hostIP(t); ip != "" {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(ports["web"])), 3e9); err == nil {
			c.Close()
			t.Errorf("web's host port answers on %s, want loopback only", ip)
		}
	}
	fi, err := os.Stat(d.sock)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("API socket: uid %d mode %v, want root and 0660", st.Uid, fi.Mode().Perm())
	}
	if g, err := user.LookupGroup("pinacle"); err == nil && strconv.Itoa(int(st.Gid)) != g.Gid {
		t.Errorf("API socket group %d, want pinacle (%s)", st.Gid, g.Gid)
	}
	key := filepath.Join(d.dir, "data", "gateway", "key")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("gateway key: %v %v, want 0600", fi, err)
	}
}

// hostIP is one of the host's non-loopback IPv4 addresses outside the
// pods' bridges, or "" when it has none.
func hostIP(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || strings.HasPrefix(ifc.Name, "pn") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return ""
}

// TestGatewayPodCannotReachNode: a pod finds neither the API socket, the
// gateway's key nor another pod's service secrets in its file system, and
// cannot connect to the gateway (here listening on every address) to
// reach another pod's service.
func TestGatewayPodCannotReachNode(t *testing.T) {
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "gateway: {port:", "gateway: {listenAddr: 0.0.0.0, port:", 1)
	}, nil)
	a, r := d.create(webSpec("reach-a", ""))
	if r.code != 0 {
		t.Fatalf("create a: %s", r.stderr)
	}
	b, r := d.create(webSpec("reach-b", ""))
	if r.code != 0 {
		t.Fatalf("create b: %s", r.stderr)
	}
	key := filepath.Join(d.dir, "data", "gateway", "key")
	bConfig := filepath.Join(d.dir, "data", "pods", b.ID, "config")
	for _, path := range []string{d.sock, "/run/pinacle/node.sock", key, filepath.Dir(key), filepath.Join(d.dir, "data", "state.db"), bConfig} {
		if r := d.cli("pod", "exec", a.ID, "--", "sh", "-c", "test -e "+path); r.code != 1 {
			t.Errorf("in the pod, test -e %s: exit %d, want 1 (absent)", path, r.code)
		}
	}
	// Each pod sees its own service secrets (what its web terminal,
	// code-server and Jupyter check), never another pod's.
	for _, f := range []string{"webterm.token", "jupyter.token", "code-server.token"} {
		own, errA := os.ReadFile(filepath.Join(d.dir, "data", "pods", a.ID, "config", f))
		other, errB := os.ReadFile(filepath.Join(bConfig, f))
		if errA != nil || errB != nil || len(own) == 0 || string(own) == string(other) {
			t.Errorf("%s of pods a and b: %v %v, want two different secrets", f, errA, errB)
			continue
		}
		r := d.cli("pod", "exec", a.ID, "--", "cat", "/.pinacle/config/"+f)
		if r.code != 0 || r.stdout != string(own) {
			t.Errorf("in pod a, %s: exit %d %q, want pod a's own", f, r.code, r.stdout)
		}
	}
	// The gateway answers from the host (401 without a cookie), so a
	// failure from the pod means blocked, not down.
	bHost := fmt.Sprintf("web-%s.localhost:%d", b.ID, d.gwPort)
	targets := []string{"$(ip route | sed -n 's/^default via \\([0-9.]*\\).*/\\1/p')"}
	if ip := hostIP(t); ip != "" {
		targets = append(targets, ip)
		if code, _ := newGWClient(t, d.gwPort).get("http://" + bHost + "/"); code != 401 {
			t.Fatalf("the gateway from the host: %d, want 401", code)
		}
	}
	for _, ip := range targets {
		cmd := fmt.Sprintf("ip=%s; test -n \"$ip\" || exit 9; timeout 5 wget -q -O - --header 'Host: %s' http://$ip:%d/index.html", ip, bHost, d.gwPort)
		r := d.cli("pod", "exec", a.ID, "--", "sh", "-c", cmd)
		if r.code == 0 || r.code == 9 || strings.Contains(r.stdout, "reach-b") {
			t.Errorf("pod a -> gateway at %s: exit %d %q %q, want a connection failure", ip, r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stderr, "401") || strings.Contains(r.stderr, "Unauthorized") {
			t.Errorf("pod a reached the gateway at %s (it answered 401): want no connection", ip)
		}
	}
}
