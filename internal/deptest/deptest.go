package deptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Module is this module's import path prefix.
const Module = "github.com/pinacle/pinacle-node"

// Rule says which packages pkg may depend on: of this module only those
// in Allowed (import paths relative to Module), and nothing in Denied
// (full import path prefixes) from anywhere.
type Rule struct {
	GOOS    string
	Allowed []string
	Denied  []string
}

// Check builds pkg (a pattern such as "." relative to the test's
// directory) for r.GOOS and fails t on every dependency r forbids. It
// needs the go command, as `go test` has.
func Check(t *testing.T, pkg string, r Rule) {
	t.Helper()
	env := append(os.Environ(), "GOOS="+r.GOOS, "CGO_ENABLED=0")
	build := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "out"), pkg)
	build.Env = env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=%s go build %s: %v\n%s", r.GOOS, pkg, err, out)
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg)
	list.Env = env
	out, err := list.Output()
	if err != nil {
		t.Fatalf("GOOS=%s go list -deps %s: %v", r.GOOS, pkg, err)
	}
	allowed := map[string]bool{}
	for _, a := range r.Allowed {
		allowed[Module+"/"+a] = true
	}
	for _, dep := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(dep, Module+"/"); ok && !allowed[dep] {
			t.Errorf("%s depends on %s (GOOS=%s), which its import rule does not allow", pkg, rest, r.GOOS)
		}
		for _, d := range r.Denied {
			if dep == d || strings.HasPrefix(dep, d+"/") {
				t.Errorf("%s depends on %s (GOOS=%s), which its import rule forbids", pkg, dep, r.GOOS)
			}
		}
	}
}
