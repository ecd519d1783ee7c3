package archtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/pinacle/pinacle-node/"

// pkg is what go list says of one package.
type pkg struct {
	ImportPath string
	Deps       []string
}

// listDeps returns every package of the module with its transitive
// dependencies, as built for goos.
func listDeps(t *testing.T, goos string, patterns ...string) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not in PATH: %v", err)
	}
	cmd := exec.Command(goBin, append([]string{"list", "-e", "-json=ImportPath,Deps"}, patterns...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list (GOOS=%s): %v", goos, err)
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		deps[strings.TrimPrefix(p.ImportPath, mod)] = p.Deps
	}
	return deps
}

// rule forbids the packages matching from (a module-relative path, or a
// prefix ending in "/") to depend, directly or not, on any of deny.
type rule struct {
	from []string
	deny []string
	why  string
}

// The layers, bottom up: the parts (one job each), the pod manager that
// drives them, the composition root and the API server that serve it, and
// cmd/ on top. A lower layer never reaches up.
var rules = []rule{
	{
		from: []string{"imagestore", "oci", "netns", "portfwd", "portfwd/", "rootfs", "supervisor", "podspec", "podspec/",
			"templates", "webterm", "snapshots", "internal/store", "internal/lifecycle", "internal/errdefs", "internal/fileutil",
			"internal/iptables", "internal/units", "internal/storeadapt", "internal/wakedial", "internal/procfs", "gateway"},
		deny: []string{"internal/pods", "internal/api", "internal/apiserver", "internal/node", "internal/render",
			"internal/hostcli", "internal/vk", "internal/k8srig", "cmd/"},
		why: "the parts never reach up into the manager, the API or the commands",
	},
	{
		from: []string{"internal/pods"},
		deny: []string{"internal/apiserver", "internal/node", "internal/render", "internal/hostcli", "internal/vk", "cmd/"},
		why:  "the manager is driven by the server and the composition root, never the reverse",
	},
	{
		from: []string{"internal/vk"},
		deny: []string{"internal/pods", "internal/node", "internal/apiserver", "internal/store", "oci", "netns", "cmd/"},
		why:  "the Kubernetes provider drives pods only through the node's API: one code path runs a pod",
	},
	{
		from: []string{"portfwd", "supervisor"},
		deny: []string{"github.com/containernetworking/", "github.com/vishvananda/"},
		why:  "the forwarder and the in-sandbox init stay free of CNI and netlink",
	},
}

func matches(pattern, p string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(p, pattern)
	}
	return p == pattern
}

func TestImportRules(t *testing.T) {
	all := listDeps(t, "linux", "./...")
	for _, r := range rules {
		for p, deps := range all {
			from := false
			for _, f := range r.from {
				from = from || matches(f, p)
			}
			if !from {
				continue
			}
			for _, d := range deps {
				rel := strings.TrimPrefix(d, mod)
				for _, deny := range r.deny {
					if matches(deny, rel) {
						t.Errorf("%s depends on %s: %s", p, rel, r.why)
					}
				}
			}
		}
	}
}
