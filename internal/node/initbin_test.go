package node

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// staticBinary builds a tiny static program to stand in for pinacle-node.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "static")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestInstallInitBinary(t *testing.T) {
	self := staticBinary(t)
	dst := InitBinaryPath(t.TempDir())
	got, err := installInitBinary(self, dst)
	if err != nil || got != dst {
		t.Fatalf("install: %q, %v", got, err)
	}
	if same, err := sameFile(self, dst); err != nil || !same {
		t.Fatalf("installed copy differs: %v, %v", same, err)
	}
	ino := inode(t, dst)
	if _, err := installInitBinary(self, dst); err != nil {
		t.Fatal(err)
	}
	if inode(t, dst) != ino {
		t.Fatal("an identical binary was copied again (running pods would lose their file for nothing)")
	}
	// A different binary at dst (an older version) is replaced by rename,
	// so the old file lives on for pods that hold it.
	if err := os.WriteFile(dst, []byte("old version"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := inode(t, dst)
	if _, err := installInitBinary(self, dst); err != nil {
		t.Fatal(err)
	}
	if same, _ := sameFile(self, dst); !same || inode(t, dst) == old {
		t.Fatal("an older binary was not replaced by a new file")
	}
	if _, err := os.Stat(dst + ".new"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func TestCheckStaticRefusesDynamic(t *testing.T) {
	if err := checkStatic(staticBinary(t)); err != nil {
		t.Fatalf("static binary refused: %v", err)
	}
	dyn, err := exec.LookPath("ls")
	if err != nil {
		testenv.Missing(t, "no ls to stand in for a dynamic binary")
	}
	if err := checkStatic(dyn); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("dynamic %s: err = %v, want invalid argument", dyn, err)
	}
	if err := checkStatic(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing binary was accepted")
	}
}

func TestSameFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, make([]byte, 200<<10), 0o644)
	if same, err := sameFile(a, b); err != nil || same {
		t.Fatalf("missing b: %v, %v", same, err)
	}
	os.WriteFile(b, make([]byte, 200<<10), 0o644)
	if same, err := sameFile(a, b); err != nil || !same {
		t.Fatalf("equal files: %v, %v", same, err)
	}
	c := make([]byte, 200<<10)
	c[len(c)-1] = 1 // differs only in the last chunk
	os.WriteFile(b, c, 0o644)
	if same, err := sameFile(a, b); err != nil || same {
		t.Fatalf("files differing at the end: %v, %v", same, err)
	}
}
