package supervisor

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps the init lean and honest: no CNI or netlink code,
// and none of the daemon's heavy machinery (store, metrics, CLI), may reach
// the in-sandbox init. os/user is out too: it may pull in cgo.
// (net/http arrives through errdefs' status codes, and podspec brings
// go-containerregistry/pkg/name and sigs.k8s.io/yaml; init does not call them.)
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/containernetworking/",
			"github.com/vishvananda/",
			"go.etcd.io/bbolt",
			"github.com/prometheus/",
			"github.com/spf13/",
			"os/user",
		} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("supervisor depends on %s", dep)
			}
		}
	}
}
