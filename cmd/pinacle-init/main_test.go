package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

// build compiles pinacle-init as the node installs it: static, no cgo
// (dropping capabilities on every thread needs that).
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pinacle-init")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestBadArguments(t *testing.T) {
	bin := build(t)
	for _, args := range [][]string{{"--log-level", "loud"}, {"svc", "ls"}, {"--nope"}} {
		err := exec.Command(bin, args...).Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("pinacle-init %v: %v, want exit 2", args, err)
		}
	}
}

// The capabilities a config names in dropCapabilities are gone from
// init and from every service it starts, in every set.
func TestDropsCapabilities(t *testing.T) {
	testenv.RequireRoot(t) // a process with CAP_SYS_ADMIN to drop it from
	sh := testenv.RequireBinary(t, "sh")
	bin, dir := build(t), t.TempDir()
	cfg := map[string]any{
		"services": []map[string]any{{"name": "caps", "restart": "never",
			"command": []string{sh, "-c", "grep -E '^Cap(Bnd|Prm|Eff)' /proc/self/status; exec sleep 60"}}},
		"logDir": dir + "/logs", "statusFile": dir + "/status.json", "controlSocket": "none",
		"dropCapabilities": []string{"CAP_SYS_ADMIN"},
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "services.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	var svc string
	for deadline := time.Now().Add(20 * time.Second); strings.Count(svc, "Cap") < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the service printed no capabilities: %q", svc)
		}
		out, _ := os.ReadFile(filepath.Join(dir, "logs", "caps.log"))
		svc = string(out)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"service": svc, "init": string(st)} {
		for _, l := range strings.Split(s, "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || !strings.HasPrefix(f[0], "Cap") || f[0] == "CapInh:" || f[0] == "CapAmb:" {
				continue
			}
			v, err := strconv.ParseUint(f[len(f)-1], 16, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", name, l, err)
			}
			if v&(1<<21) != 0 {
				t.Errorf("%s still holds CAP_SYS_ADMIN: %s", name, l)
			}
		}
	}
}
