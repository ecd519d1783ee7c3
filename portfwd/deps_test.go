package portfwd_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the import graph honest (as tailscale's depaware does):
// the forwarder must stay usable without CNI or netlink, and of pinacle's
// own packages it may use only errdefs.
func TestDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH; cannot list dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/pinacle/pinacle-node/portfwd").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = "github.com/pinacle/pinacle-node/"
	allowed := map[string]bool{self + "portfwd": true, self + "internal/errdefs": true}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(dep, "github.com/containernetworking/"),
			strings.HasPrefix(dep, "github.com/vishvananda/"):
			t.Errorf("portfwd imports %s (no CNI or netlink here)", dep)
		case strings.HasPrefix(dep, self) && !allowed[dep]:
			t.Errorf("portfwd imports %s (only internal/errdefs is allowed)", dep)
		}
	}
}
