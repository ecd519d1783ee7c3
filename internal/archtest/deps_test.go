package archtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// depRule bounds what one package may depend on when built for goos: of
// this module only the packages in own (nil: any), and from anywhere
// nothing under deny (import path prefixes).
type depRule struct {
	pkg  string
	goos string
	own  []string
	deny []string
	why  string
}

// The host side (API, renderer, host CLI) is built for macOS; init and the
// forwarder stay lean. Packages are module-relative.
var (
	linuxOnly = []string{"go.etcd.io/bbolt", "github.com/vishvananda", "github.com/containernetworking", "golang.org/x/sys/unix"}
	hostOwn   = []string{"internal/api", "internal/cli", "internal/errdefs", "internal/lifecycle", "podspec", "podspec/svcspec"}
	// kube is Kubernetes and virtual-kubelet: only `pinacle-vk` (and the
	// rig) carry them, never pinacle-node nor the host side built for macOS.
	kube = []string{"k8s.io/", "sigs.k8s.io/controller-runtime", "github.com/virtual-kubelet/"}
)

var depRules = []depRule{
	{pkg: "internal/api", goos: "darwin", own: hostOwn, deny: append(kube, linuxOnly...),
		why: "the API's wire types and client build for the macOS host CLI"},
	{pkg: "internal/render", goos: "darwin", own: append([]string{"internal/render"}, hostOwn...), deny: append(kube, linuxOnly...),
		why: "both CLIs print through one renderer, and one of them runs on macOS"},
	{pkg: "internal/hostcli", goos: "darwin", own: append([]string{"internal/hostcli", "internal/render"}, hostOwn...),
		deny: append(kube, linuxOnly[:3]...), why: "the host CLI uses the node's API and renderer, none of its Linux implementation (nor Kubernetes)"},
	{pkg: "cmd/pinacle", goos: "darwin", own: append([]string{"cmd/pinacle", "internal/hostcli", "internal/render"}, hostOwn...),
		deny: append(kube, linuxOnly[:3]...), why: "the host CLI uses the node's API and renderer, none of its Linux implementation (nor Kubernetes)"},
	{pkg: "portfwd", goos: "linux", own: []string{"portfwd", "internal/errdefs", "internal/fileutil", "internal/wakedial"},
		deny: []string{"github.com/containernetworking/", "github.com/vishvananda/"},
		why:  "the forwarder is usable without CNI or netlink; its kernel path lives in portfwd/dnat"},
	{pkg: "cmd/pinacle-node", goos: "linux", deny: kube,
		why: "pinacle-node is also every sandbox's PID 1; Kubernetes' client libraries live in cmd/pinacle-vk"},
	{pkg: "supervisor", goos: "linux",
		deny: []string{"github.com/containernetworking/", "github.com/vishvananda/", "go.etcd.io/bbolt",
			"github.com/prometheus/", "github.com/spf13/", "os/user"},
		why: "the in-sandbox init carries none of the daemon's machinery (os/user may pull in cgo)"},
	{pkg: "cmd/pinacle-init", goos: "linux",
		own:  []string{"cmd/pinacle-init", "supervisor", "podspec/svcspec", "internal/errdefs", "internal/fileutil"},
		deny: append([]string{"os/user", "net/http", "crypto/tls", "crypto/x509"}, thirdParty...),
		why:  "pods' PID 1 links the supervisor only: every page its start touches is copied into each sandbox"},
	{pkg: "podspec/svcspec", goos: "linux", own: []string{"podspec/svcspec"}, deny: thirdParty,
		why: "the service types init shares with the pod spec need the standard library only"},
}

// thirdParty is every module outside the standard library that init could
// pick up (podspec's image-reference and YAML parsers among them), except
// golang.org/x/sys/unix, which init uses.
var thirdParty = []string{"github.com/", "go.etcd.io/", "go.yaml.in/", "sigs.k8s.io/", "gopkg.in/", "k8s.io/",
	"google.golang.org/", "golang.org/x/net/", "golang.org/x/text/", "golang.org/x/sync/", "golang.org/x/crypto/"}

func TestDependencyRules(t *testing.T) {
	for _, r := range depRules {
		t.Run(strings.ReplaceAll(r.pkg, "/", "_")+"_"+r.goos, func(t *testing.T) {
			env := append(os.Environ(), "GOOS="+r.goos, "CGO_ENABLED=0")
			build := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "out"), "./"+r.pkg)
			build.Dir, build.Env = "../..", env
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("GOOS=%s go build ./%s: %v\n%s", r.goos, r.pkg, err, out)
			}
			for _, dep := range listDeps(t, r.goos, "./"+r.pkg)[r.pkg] {
				if rel, ok := strings.CutPrefix(dep, mod); ok {
					if r.own != nil && !contains(r.own, rel) {
						t.Errorf("%s depends on %s (GOOS=%s): %s", r.pkg, rel, r.goos, r.why)
					}
					continue // the module's own packages are own's to judge, not deny's
				}
				for _, d := range r.deny {
					if dep == strings.TrimSuffix(d, "/") || strings.HasPrefix(dep, strings.TrimSuffix(d, "/")+"/") {
						t.Errorf("%s depends on %s (GOOS=%s): %s", r.pkg, dep, r.goos, r.why)
					}
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
