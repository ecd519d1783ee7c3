//go:build k8srig

package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var (
	nodeBin string
	vkBin   string
	workDir string
	skipWhy string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	switch {
	case os.Geteuid() != 0:
		skipWhy = "the rig test needs root (it runs pinacle nodes)"
	default:
		if _, err := exec.LookPath("runsc"); err != nil {
			skipWhy = "runsc is not installed (run `make setup`)"
		}
	}
	if skipWhy != "" {
		fmt.Fprintln(os.Stderr, "k8s rig: skipping:", skipWhy)
		return m.Run()
	}
	var err error
	workDir, err = os.MkdirTemp("", "pinacle-k8s-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	nodeBin, vkBin = filepath.Join(workDir, "pinacle-node"), filepath.Join(workDir, "pinacle-vk")
	// pinacle-init goes beside pinacle-node, where the node looks for pods' PID 1.
	initBin := filepath.Join(workDir, "pinacle-init")
	for bin, pkg := range map[string]string{nodeBin: "../../cmd/pinacle-node", initBin: "../../cmd/pinacle-init", vkBin: "../../cmd/pinacle-vk"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "k8s rig: building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}
