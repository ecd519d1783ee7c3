package netns

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/pinacle/pinacle-node/internal/procfs"
)

// TestTeardownKillsStalePlugins: a daemon SIGKILLed while a CNI plugin
// works for a network leaves that plugin running; the next process must
// end it before it tears the network down, or the plugin, finishing its
// ADD afterwards, makes a bridge and an address that no record owns (a
// shell that would add the bridge stands in for the plugin: a real one
// cannot be held in the middle of an ADD on demand). A plugin at work for
// a network this node has no record of is not touched.
func TestTeardownKillsStalePlugins(t *testing.T) {
	e := newTestManager(t)
	ctx := context.Background()
	a := setup(t, e, Spec{PodID: "stale"})
	plugin := func(containerID, script string) *exec.Cmd {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID="+containerID, "CNI_IFNAME=eth0")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	stale := plugin(a.ContainerID, "sleep 60; ip link add "+a.Bridge+" type bridge")
	other := plugin("pnt-not-ours", "sleep 60")

	// The next daemon: a manager of its own over the same records and
	// subnet store, which has run no plugin yet.
	m2, err := New(WithStateDir(e.m.stateDir), WithPool(e.pool, 28), WithSubnetStore(e.m.store),
		WithNames(e.m.bridgePrefix, e.m.chainPrefix, e.m.netnsPrefix), WithHostDNS(e.m.hostDNS))
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Teardown(ctx, "stale"); err != nil {
		t.Fatal(err)
	}
	if procfs.Alive(stale.Process.Pid) {
		t.Errorf("the plugin an earlier process left at work for %s still runs after the teardown", a.ContainerID)
	}
	if !procfs.Alive(other.Process.Pid) {
		t.Errorf("a plugin for a network without a record here was killed")
	}
	if _, err := os.Stat(e.m.recordPath("stale")); !os.IsNotExist(err) {
		t.Errorf("record after teardown: %v", err)
	}
}
