package netns

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/internal/procfs"
)

// CNI plugins are processes of their own, and a SIGKILL of the daemon
// does not end them: a bridge plugin in the middle of an ADD finishes its
// work (bridge, veth, addresses, IPAM lease) after the daemon is gone. If
// the next daemon tore that network down first (a warm entry it drains, a
// half-made pod's it undoes), the plugin would then make a bridge and an
// address that no record owns and nothing ever removes. Every record is
// written before its plugins run, so the processes to end are exactly
// those working for a recorded network: before this process runs a plugin
// of its own, it kills them and waits until they are gone.

// staleKillTimeout bounds the wait for killed plugins to exit.
const staleKillTimeout = 10 * time.Second

// killStalePlugins, the first time it is called in this process, SIGKILLs
// the CNI plugin processes (CNI_COMMAND set, CNI_CONTAINERID one of the
// recorded networks') that an earlier process left, and waits until they
// have exited. It is called before every plugin call; later calls return
// at once.
func (m *manager) killStalePlugins(ctx context.Context) {
	m.staleOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), staleKillTimeout)
		defer cancel()
		ids, err := m.recordedContainerIDs()
		if err == nil && len(ids) > 0 {
			if pids := stalePlugins(ids); len(pids) > 0 {
				m.log.Info("killing CNI plugins an earlier process left at work", "pids", pids)
				err = killAndWait(ctx, pids)
			}
		}
		if err != nil {
			// The records stay, so teardown still finds what such a
			// plugin made; only its timing is left to chance.
			m.log.Warn("ending the CNI plugins an earlier process left", "err", err)
		}
	})
}

// recordedContainerIDs returns the CNI container IDs of every record,
// warm entries included.
func (m *manager) recordedContainerIDs() (map[string]bool, error) {
	ids, err := m.recordIDs()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, id := range ids {
		if a, err := m.load(id); err == nil && a.ContainerID != "" {
			out[a.ContainerID] = true
		}
	}
	return out, nil
}

// stalePlugins lists the pids of the processes whose environment says
// they are a CNI plugin at work for one of containerIDs (plugins that
// delegate, as bridge does to host-local, pass the environment on).
func stalePlugins(containerIDs map[string]bool) []int {
	all, err := procfs.PIDs()
	if err != nil {
		return nil
	}
	var pids []int
	for _, pid := range all {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			continue // gone meanwhile, or a kernel thread
		}
		var cmd, cid string
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, "CNI_COMMAND="); ok {
				cmd = v
			} else if v, ok := strings.CutPrefix(kv, "CNI_CONTAINERID="); ok {
				cid = v
			}
		}
		if cmd != "" && containerIDs[cid] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killAndWait SIGKILLs pids and waits until each has exited (a zombie has).
func killAndWait(ctx context.Context, pids []int) error {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL) // it may be gone already
	}
	for _, pid := range pids {
		for procfs.Alive(pid) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("CNI plugin %d left by an earlier process: %w", pid, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}
