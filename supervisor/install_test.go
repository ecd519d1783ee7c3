package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInstallInterrupted: an install cut short (here by stopping init in
// the middle of it, as a killed sandbox would) after it made its creates
// path runs again at the next start, instead of the half-made path being
// taken for a finished install. A finished install is not run again.
func TestInstallInterrupted(t *testing.T) {
	dir := t.TempDir()
	creates := filepath.Join(dir, "index.html")
	// The first install makes creates, empty, and never finishes.
	web := svc("web", sh("exec sleep 1000"))
	web.Install = sh(": > " + creates + "; echo half-done; exec sleep 1000")
	web.Creates = creates
	cfg := testConfig(t, web)
	s, stop := runSupervisor(t, cfg)
	waitService(t, s, "web", 10*time.Second, inState(StateInstalling))
	waitOutput(t, cfg, "web", "half-done")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(creates); err != nil {
		t.Fatalf("the first install did not make %s: %v", creates, err)
	}

	// The next init, on the same run directory, runs it again.
	cfg.Services[0].Install = sh("echo full > " + creates)
	s, stop = runSupervisor(t, cfg)
	waitService(t, s, "web", 10*time.Second, inState(StateRunning))
	if b, err := os.ReadFile(creates); err != nil || strings.TrimSpace(string(b)) != "full" {
		t.Fatalf("%s after the second start = %q, %v; want the install run again", creates, b, err)
	}
	waitLog(t, cfg, "web", "an earlier install did not finish")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// A third, after a finished install, skips it: creates is trusted.
	cfg.Services[0].Install = sh("echo again > " + creates)
	s, stop = runSupervisor(t, cfg)
	defer stop()
	waitService(t, s, "web", 10*time.Second, inState(StateRunning))
	if b, _ := os.ReadFile(creates); strings.TrimSpace(string(b)) != "full" {
		t.Fatalf("a finished install ran again: %s = %q", creates, b)
	}
}
