package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

var (
	nodeBin  string // the pinacle-node binary under test
	skipWhy  string // non-empty: why the suite cannot run here
	workRoot string // everything the suite creates lives below this
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	switch {
	case os.Geteuid() != 0:
		skipWhy = "e2e tests need root (they create sandboxes, mounts and network namespaces)"
	default:
		if _, err := exec.LookPath("runsc"); err != nil {
			skipWhy = "runsc is not installed (run `make setup`)"
		}
	}
	if skipWhy != "" {
		fmt.Fprintln(os.Stderr, "e2e: skipping:", skipWhy)
		return m.Run()
	}
	var err error
	workRoot, err = os.MkdirTemp("", "pinacle-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workRoot)
	nodeBin = filepath.Join(workRoot, "pinacle-node")
	// pinacle-init, pods' PID 1, goes beside the node, where it looks.
	for bin, pkg := range map[string]string{nodeBin: "../cmd/pinacle-node", filepath.Join(workRoot, "pinacle-init"): "../cmd/pinacle-init"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	ctx := context.Background()
	probe := suiteProbe()
	before := probe.Take(ctx)
	if err := before.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: leak check cannot run:", err)
		return 1
	}
	code := m.Run()
	// The leak check: whatever the tests created under our names must be
	// gone (each test that starts a daemon is also checked on its own).
	if err := probe.Check(ctx, before, 10*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: leak check failed:", err)
		if code == 0 {
			code = 1
		}
	} else {
		fmt.Fprintln(os.Stderr, "e2e: leak check passed")
	}
	return code
}

// requireNode skips a test where the suite cannot run (no root, no
// runsc), and fails it under CI=true, where a missing prerequisite must
// never pass as a skip.
func requireNode(t *testing.T) {
	t.Helper()
	testenv.Require(t, skipWhy == "", "%s", skipWhy)
}

// node runs the binary with args and returns stdout, stderr and exit code.
type result struct {
	stdout, stderr string
	code           int
}

func node(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), code}
}
