package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestOOMKillsReadsTheMemoryCgroup: the lean reader the node polls for
// every pod agrees with the full one, and says so when the cgroup is gone.
func TestOOMKillsReadsTheMemoryCgroup(t *testing.T) {
	v1, v2 := cgroupMounts()
	root, ok := v1["memory"]
	if !ok {
		if v2 == "" {
			t.Skip("no memory cgroup")
		}
		root = v2
	}
	cg := fmt.Sprintf("/pinacle-test-oom-%d", os.Getpid())
	dir := filepath.Join(root, cg)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a memory cgroup: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })

	n, ok := OOMKills(cg)
	if !ok {
		t.Fatalf("OOMKills(%s) could not read a cgroup that exists", cg)
	}
	if ev := readMemoryEvents(cg); !ev.ok || ev.oomKills != n {
		t.Fatalf("OOMKills = %d, readMemoryEvents = %+v", n, ev)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok := OOMKills(cg); ok {
		t.Fatalf("OOMKills(%s) read a removed cgroup", cg)
	}
	if _, ok := OOMKills(""); ok {
		t.Fatal(`OOMKills("") = ok`)
	}
}
