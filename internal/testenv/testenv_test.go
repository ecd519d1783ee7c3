package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRequireUnderCI runs a missing prerequisite in a child test process
// with and without CI=true: a skip on a developer's machine, a failure in CI.
func TestRequireUnderCI(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		Require(t, false, "a thing that is never there")
		return
	}
	for _, c := range []struct {
		ci       string
		wantFail bool
		want     string
	}{{"", false, "SKIP"}, {"true", true, "prerequisite missing under CI=true: a thing that is never there"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRequireUnderCI$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.wantFail || !strings.Contains(string(out), c.want) {
			t.Errorf("CI=%q: err=%v, output:\n%s\nwant failure=%v and %q", c.ci, err, out, c.wantFail, c.want)
		}
	}
}
