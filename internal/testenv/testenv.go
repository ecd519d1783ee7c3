package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// InCI says whether the tests run under CI (CI=true), where every
// prerequisite must be present: a test that cannot run there is a failure,
// or a CI box missing runsc would pass.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing says that a prerequisite of t is missing: it skips t on a
// developer's machine and fails it under CI=true. A kernel feature this
// machine lacks is not a prerequisite: skip for that, and say which.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", msg)
	}
	t.Skipf("prerequisite missing: %s", msg)
}

// Require is Missing unless ok.
func Require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		Missing(t, format, args...)
	}
}

// RequireRoot requires euid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "needs root")
}

// RequireBinary requires name in PATH and returns its path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Require(t, err == nil, "needs %s in PATH", name)
	return p
}

// RequireFile requires path to exist (a binary outside PATH, a kernel
// interface) and says why it is needed.
func RequireFile(t testing.TB, path, why string) {
	t.Helper()
	_, err := os.Stat(path)
	Require(t, err == nil, "needs %s (%s)", path, why)
}
