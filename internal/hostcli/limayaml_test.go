package hostcli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"sigs.k8s.io/yaml"

	"github.com/pinacle/pinacle-node/internal/nodeconfig"
)

// limaTemplate is the part of Lima's template schema that lima.yaml uses
// (lima-vm/lima pkg/limayaml); fields we do not check are left out.
type limaTemplate struct {
	MinimumLimaVersion string `json:"minimumLimaVersion"`
	Images             []struct {
		Location string `json:"location"`
		Arch     string `json:"arch"`
		Digest   string `json:"digest"`
	} `json:"images"`
	CPUs   int    `json:"cpus"`
	Memory string `json:"memory"`
	Disk   string `json:"disk"`
	Mounts []struct {
		Location   string `json:"location"`
		MountPoint string `json:"mountPoint"`
		Writable   *bool  `json:"writable"`
	} `json:"mounts"`
	Containerd struct {
		System *bool `json:"system"`
		User   *bool `json:"user"`
	} `json:"containerd"`
	Param     map[string]string `json:"param"`
	Provision []struct {
		Mode   string `json:"mode"`
		Script string `json:"script"`
	} `json:"provision"`
	Probes []struct {
		Mode   string `json:"mode"`
		Script string `json:"script"`
		Hint   string `json:"hint"`
	} `json:"probes"`
	PortForwards []struct {
		GuestIP        string `json:"guestIP"`
		GuestPortRange [2]int `json:"guestPortRange"`
		GuestPort      int    `json:"guestPort"`
		HostPort       int    `json:"hostPort"`
		HostIP         string `json:"hostIP"`
		HostPortRange  [2]int `json:"hostPortRange"`
		Ignore         bool   `json:"ignore"`
	} `json:"portForwards"`
}

const repoRoot = "../.."

func loadLimaTemplate(t *testing.T) (*limaTemplate, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "lima.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var lt limaTemplate
	if err := yaml.Unmarshal(b, &lt); err != nil {
		t.Fatalf("lima.yaml: %v", err)
	}
	return &lt, b
}

// render expands a script the way Lima does (Go text/template with the
// instance's variables), with PinacleRepo set as `make vm-up` sets it.
func render(t *testing.T, lt *limaTemplate, script string) string {
	t.Helper()
	params := map[string]string{}
	for k, v := range lt.Param {
		params[k] = v
	}
	params["PinacleRepo"] = "/Users/dev/src/pinacle-node"
	return renderWith(t, script, params)
}

func renderWith(t *testing.T, script string, params map[string]string) string {
	t.Helper()
	tmpl, err := template.New("script").Option("missingkey=error").Parse(script)
	if err != nil {
		t.Fatalf("script is not a valid Lima template: %v", err)
	}
	var out bytes.Buffer
	data := map[string]any{"Param": params, "User": "dev", "Home": "/home/dev.linux", "UID": 501, "Name": "pinacle"}
	if err := tmpl.Execute(&out, data); err != nil {
		t.Fatalf("script template: %v", err)
	}
	return out.String()
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestLimaImagesPinned(t *testing.T) {
	lt, _ := loadLimaTemplate(t)
	perArch := map[string]int{}
	for i, img := range lt.Images {
		if !digestRE.MatchString(img.Digest) {
			t.Errorf("images[%d] (%s): digest %q is not sha256:<64 hex>", i, img.Arch, img.Digest)
		}
		if !strings.HasPrefix(img.Location, "https://") {
			t.Errorf("images[%d]: location %q is not https", i, img.Location)
		}
		// The arch in the file name must be the entry's arch.
		want := map[string]string{"aarch64": "arm64", "x86_64": "amd64"}[img.Arch]
		if want == "" || !strings.Contains(img.Location, "-"+want+".") {
			t.Errorf("images[%d]: arch %q does not match location %q", i, img.Arch, img.Location)
		}
		perArch[img.Arch]++
	}
	for _, arch := range []string{"aarch64", "x86_64"} {
		if perArch[arch] == 0 {
			t.Errorf("no image for %s", arch)
		}
	}
	// A location seen twice must carry the same digest (mirrors of one file).
	byName := map[string]string{}
	for _, img := range lt.Images {
		name := filepath.Base(img.Location)
		if d, ok := byName[name]; ok && d != img.Digest {
			t.Errorf("%s: two digests %s and %s", name, d, img.Digest)
		}
		byName[name] = img.Digest
	}
}

func parseGiB(t *testing.T, s string) float64 {
	t.Helper()
	n, ok := strings.CutSuffix(s, "GiB")
	if !ok {
		t.Fatalf("size %q: want NGiB", s)
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLimaResourcesFitTiers(t *testing.T) {
	lt, _ := loadLimaTemplate(t)
	// dev.xlarge is 8 vCPU/8 GiB/80 GiB: its disk must fit, and the VM must
	// hold several small pods (1 vCPU/1 GiB) besides the system.
	if lt.CPUs < 4 {
		t.Errorf("cpus %d: want >= 4", lt.CPUs)
	}
	if m := parseGiB(t, lt.Memory); m < 8 {
		t.Errorf("memory %s: want >= 8GiB", lt.Memory)
	}
	if d := parseGiB(t, lt.Disk); d < 80 {
		t.Errorf("disk %s: want >= 80GiB (dev.xlarge's storage)", lt.Disk)
	}
	if lt.Containerd.System == nil || *lt.Containerd.System || lt.Containerd.User == nil || *lt.Containerd.User {
		t.Error("containerd must be off (system: false, user: false): the node drives runsc itself")
	}
}

func TestLimaMountsRepoReadOnly(t *testing.T) {
	lt, _ := loadLimaTemplate(t)
	if len(lt.Mounts) != 1 {
		t.Fatalf("mounts: %d, want only the repository", len(lt.Mounts))
	}
	m := lt.Mounts[0]
	if m.MountPoint != "/opt/pinacle/src" {
		t.Errorf("mount %+v: want the repository at /opt/pinacle/src", m)
	}
	// Lima expands the location as a template with the params, then
	// refuses a location that is not an absolute path and shows it: with
	// PinacleRepo set it is the repository, without it a sentence that
	// names the command to use (limactl start ./lima.yaml alone).
	for _, tc := range []struct {
		repo string
		abs  bool
	}{{"/Users/dev/src/pinacle-node", true}, {"", false}} {
		loc := renderWith(t, m.Location, map[string]string{"PinacleRepo": tc.repo})
		if tc.abs && loc != tc.repo {
			t.Errorf("mount location with PinacleRepo=%q: %q, want the repository", tc.repo, loc)
		}
		if !tc.abs && (filepath.IsAbs(loc) || strings.HasPrefix(loc, "~") || !strings.Contains(loc, "pinacle vm up")) {
			t.Errorf("mount location without PinacleRepo: %q, want a relative \"path\" (Lima rejects it) naming pinacle vm up", loc)
		}
	}
	if m.Writable == nil || *m.Writable {
		t.Error("the repository mount must be read-only (writable: false)")
	}
	if _, ok := lt.Param["PinacleRepo"]; !ok {
		t.Error("param PinacleRepo is not declared")
	}
}

// systemScript is the one system provisioning script, rendered.
func systemScript(t *testing.T, lt *limaTemplate) string {
	t.Helper()
	var scripts []string
	for _, p := range lt.Provision {
		if p.Mode == "system" {
			scripts = append(scripts, render(t, lt, p.Script))
		}
	}
	if len(scripts) != 1 {
		t.Fatalf("%d system provisioning scripts, want 1", len(scripts))
	}
	return scripts[0]
}

func TestLimaProvisioning(t *testing.T) {
	lt, _ := loadLimaTemplate(t)
	s := systemScript(t, lt)
	for _, want := range []struct{ what, re string }{
		{"bash with errexit", `^#!/bin/bash\n(#[^\n]*\n)*set -eux -o pipefail\n`},
		{"runsc from gVisor's release bucket for the arch", `https://storage\.googleapis\.com/gvisor/releases/release/\$\{runsc_release\}/\$\{arch\}`},
		{"runsc's sha512 fetched and checked", `runsc\.sha512[\s\S]*verify runsc runsc\.sha512 sha512`},
		{"runsc installed", `install -m 0755 "\$tmp/runsc" /usr/local/bin/runsc`},
		{"CNI release tarball for the arch", `cni-plugins-linux-\$\{goarch\}-\$\{cni_version\}\.tgz`},
		{"CNI from containernetworking's releases", `https://github\.com/containernetworking/plugins/releases/download/\$\{cni_version\}`},
		{"CNI's sha256 checked", `verify "\$tgz" "\$tgz\.sha256" sha256`},
		{"CNI unpacked to /opt/cni/bin", `tar -xzf "\$tmp/\$tgz" -C /opt/cni/bin`},
		{"iptables installed", `apt-get install [^\n]*\biptables\b`},
		{"arch mapping aarch64", `aarch64\) goarch=arm64`},
		{"arch mapping x86_64", `x86_64\) goarch=amd64`},
		{"the cross-built node binary from the mount", `bin="\$repo/bin/pinacle-node-linux-\$\{goarch\}"`},
		{"node and init binaries installed", `for c in node init; do[\s\S]*install -m 0755 "\$b" /usr/local/bin/pinacle-\$c\.new\n\s*mv -f /usr/local/bin/pinacle-\$c\.new /usr/local/bin/pinacle-\$c\n`},
		{"the unit installed", `install -m 0644 "\$repo/deploy/pinacle-node\.service" /etc/systemd/system/pinacle-node\.service`},
		{"the node config installed", `install -m 0644 "\$repo/deploy/node\.yaml" /etc/pinacle/node\.yaml`},
		{"the unit enabled", `systemctl enable pinacle-node\.service`},
		{"the unit started", `systemctl (re)?start pinacle-node\.service`},
		{"ip_forward", `net\.ipv4\.ip_forward = 1`},
		{"reserved pod ports", `net\.ipv4\.ip_local_reserved_ports = 30000-40000`},
		{"sysctl applied", `sysctl -q -p /etc/sysctl\.d/90-pinacle\.conf`},
	} {
		if !regexp.MustCompile(want.re).MatchString(s) {
			t.Errorf("provisioning: no %s (/%s/)", want.what, want.re)
		}
	}
	// The mount point the script reads is the one lima.yaml mounts.
	if !strings.Contains(s, "repo=/opt/pinacle/src\n") {
		t.Error("provisioning reads the repository somewhere other than the mount point")
	}
	// Params reach the script as data (Lima's PARAM_* environment), never
	// spliced into its code: a path with a quote or $(...) in it stays a path.
	for _, p := range lt.Provision {
		if strings.Contains(p.Script, ".Param.") {
			t.Errorf("a %s provisioning script splices a param into its code ({{.Param.X}}); read $PARAM_X", p.Mode)
		}
	}
	for _, k := range []string{"PinacleRepo", "RunscRelease", "CniPluginsVersion"} {
		if !strings.Contains(s, `"${PARAM_`+k+`}"`) {
			t.Errorf("provisioning does not read param %s from $PARAM_%s", k, k)
		}
	}
	// Every param is used where Lima looks for it (ValidateParamIsUsed:
	// provision and probe scripts), or limactl refuses the template.
	for k := range lt.Param {
		re := regexp.MustCompile(`{{[^}]*\.Param\.` + k + `[^}]*}}|\bPARAM_` + k + `\b`)
		used := false
		for _, p := range lt.Provision {
			used = used || re.MatchString(p.Script)
		}
		for _, p := range lt.Probes {
			used = used || re.MatchString(p.Script)
		}
		if !used {
			t.Errorf("param %s is not used in a provision or probe script; limactl would refuse the template", k)
		}
	}
	bashSyntax(t, s)
}

// bashSyntax checks the rendered script parses (bash -n), when bash exists.
func bashSyntax(t *testing.T, script string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Log("bash not found; skipping the syntax check")
		return
	}
	cmd := exec.Command(bash, "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, out)
	}
}

func TestLimaProbeWaitsForSocket(t *testing.T) {
	lt, _ := loadLimaTemplate(t)
	if len(lt.Probes) == 0 {
		t.Fatal("no readiness probe")
	}
	p := lt.Probes[0]
	if p.Mode != "readiness" {
		t.Errorf("probe mode %q, want readiness", p.Mode)
	}
	s := render(t, lt, p.Script)
	if !strings.HasPrefix(s, "#!") {
		t.Error("Lima probes must start with #!")
	}
	if !strings.Contains(s, "[ -S /run/pinacle/node.sock ]") || !strings.Contains(s, "timeout ") {
		t.Errorf("probe does not wait (with a timeout) for the socket /run/pinacle/node.sock:\n%s", s)
	}
	bashSyntax(t, s)
}

func TestLimaForwardsPodPorts(t *testing.T) {
	lt, _ := loadLimaTemplate(t)
	found := false
	for _, pf := range lt.PortForwards {
		if pf.Ignore {
			continue
		}
		if pf.GuestPortRange == [2]int{30000, 40000} {
			found = true
			if pf.HostPortRange != pf.GuestPortRange {
				t.Errorf("hostPortRange %v: want the same ports as the guest (pod URLs print the VM's port)", pf.HostPortRange)
			}
			if pf.HostIP != "127.0.0.1" {
				t.Errorf("hostIP %q: want 127.0.0.1 (pods reachable from this Mac only)", pf.HostIP)
			}
			// Lima's default guestIP 127.0.0.1 also matches 0.0.0.0 binds,
			// which is where the node listens (node.yaml).
			if pf.GuestIP != "" && pf.GuestIP != "127.0.0.1" && pf.GuestIP != "0.0.0.0" {
				t.Errorf("guestIP %q would not match the node's 0.0.0.0 listeners", pf.GuestIP)
			}
		}
	}
	if !found {
		t.Error("no portForwards rule for guestPortRange [30000, 40000]")
	}
	gw := false
	for _, pf := range lt.PortForwards {
		gw = gw || (!pf.Ignore && pf.GuestPort == nodeconfig.DefaultGatewayPort && pf.HostPort == pf.GuestPort && pf.HostIP == "127.0.0.1")
	}
	if !gw {
		t.Errorf("no portForwards rule for the gateway's port %d to the Mac's 127.0.0.1", nodeconfig.DefaultGatewayPort)
	}
}

// TestNodeConfigSystrap checks the config the VM installs: systrap, the
// port pool Lima forwards, listening where Lima sees it.
func TestNodeConfigSystrap(t *testing.T) {
	cfg, err := nodeconfig.Load(filepath.Join(repoRoot, "deploy", "node.yaml"), true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Platform != "systrap" {
		t.Errorf("platform %q: want systrap (nested KVM is rare on Macs)", cfg.Platform)
	}
	if cfg.Ports.Min != 30000 || cfg.Ports.Max != 40000 {
		t.Errorf("ports %d-%d: want 30000-40000, the range lima.yaml forwards", cfg.Ports.Min, cfg.Ports.Max)
	}
	if cfg.Ports.ListenAddr != "0.0.0.0" && cfg.Ports.ListenAddr != "127.0.0.1" {
		t.Errorf("ports.listenAddr %q: Lima only forwards loopback and 0.0.0.0 binds", cfg.Ports.ListenAddr)
	}
	if cfg.Ports.URLHost != "127.0.0.1" {
		t.Errorf("ports.urlHost %q: want 127.0.0.1, where Lima forwards on the Mac", cfg.Ports.URLHost)
	}
	if cfg.Socket != "/run/pinacle/node.sock" {
		t.Errorf("socket %q: the readiness probe waits for /run/pinacle/node.sock", cfg.Socket)
	}
	unit, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "pinacle-node.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/pinacle-node serve --config /etc/pinacle/node\.yaml`).Match(unit) {
		t.Error("the unit does not run /usr/local/bin/pinacle-node serve --config /etc/pinacle/node.yaml")
	}
	if !regexp.MustCompile(`(?m)^Type=notify`).Match(unit) {
		t.Error("the unit is not Type=notify")
	}
}

// TestLimaVersionsPinned: runsc, like the CNI plugins, is a fixed release
// by default, so two VMs made a week apart run the same binaries; and the
// script refuses a release that is not one (it becomes a URL path).
func TestLimaVersionsPinned(t *testing.T) {
	lt, _ := loadLimaTemplate(t)
	if r := lt.Param["RunscRelease"]; !regexp.MustCompile(`^[0-9]{8}\.[0-9]+$`).MatchString(r) {
		t.Errorf("param RunscRelease %q: want a pinned gVisor point release (YYYYMMDD.N), not latest", r)
	}
	if v := lt.Param["CniPluginsVersion"]; !regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(v) {
		t.Errorf("param CniPluginsVersion %q: want a release tag", v)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		testenv.Missing(t, "bash not found")
	}
	// Run the script's own checks of the params (its first lines, up to
	// the first step that changes the machine) with chosen values.
	s := systemScript(t, lt)
	head, _, ok := strings.Cut(s, "\n# uname -m")
	if !ok {
		head, _, ok = strings.Cut(s, "# uname -m")
	}
	if !ok {
		t.Fatal("cannot find the end of the param checks (# uname -m ...)")
	}
	head = strings.ReplaceAll(head, "mkdir -p \"$state\"", "true")
	for _, tc := range []struct {
		runsc, cni string
		ok         bool
	}{
		{lt.Param["RunscRelease"], lt.Param["CniPluginsVersion"], true},
		{"latest", "v1.10.0", true},
		{"20250715", "v1.10.0", true},
		{"../../evil", "v1.10.0", false},
		{"20250715.0; rm -rf /", "v1.10.0", false},
		{"20250715.0", "v1.10.0/../x", false},
	} {
		cmd := exec.Command(bash, "-c", head)
		cmd.Env = append(os.Environ(), "PARAM_PinacleRepo=/Users/dev/src", "PARAM_RunscRelease="+tc.runsc, "PARAM_CniPluginsVersion="+tc.cni)
		out, err := cmd.CombinedOutput()
		if (err == nil) != tc.ok {
			t.Errorf("RunscRelease=%q CniPluginsVersion=%q: err %v, want ok=%v\n%s", tc.runsc, tc.cni, err, tc.ok, out)
		}
	}
}
