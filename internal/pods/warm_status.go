package pods

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

var _ api.NodeStatuser = (*Manager)(nil)

// nodeCapacity is what capacity() adds up.
type nodeCapacity struct {
	CPUCores                         float64
	MemoryBytes                      int64
	Pods, Warm                       api.NodeResources
	PodsMemoryBytes, WarmMemoryBytes int64
}

// holdsSandbox: the states in which a pod has (or is getting) a sandbox.
var holdsSandbox = map[lifecycle.State]bool{
	lifecycle.Pending: true, lifecycle.Provisioning: true, lifecycle.Running: true, lifecycle.Starting: true,
	lifecycle.Stopping: true, lifecycle.Hibernating: true, lifecycle.Waking: true,
}

// capacity adds up the host's CPUs and memory and what the pods holding
// a sandbox and the warm entries reserve of them (their limits).
func (m *Manager) capacity(ctx context.Context) (nodeCapacity, error) {
	c := nodeCapacity{CPUCores: float64(runtime.NumCPU()), MemoryBytes: memTotal()}
	ps, err := m.cfg.Store.ListPods(ctx)
	if err != nil {
		return c, err
	}
	for i := range ps {
		if !holdsSandbox[ps[i].State] {
			continue
		}
		spec, err := decodeSpec(&ps[i])
		if err != nil {
			continue
		}
		if l, err := spec.Resources.Limits(); err == nil {
			c.Pods.Count++
			c.Pods.CPUCores += l.CPUCores
			c.Pods.MemoryBytes += l.MemoryBytes
		}
	}
	m.warm.mu.Lock()
	for _, e := range m.warm.entries {
		if l, err := e.Resources.Limits(); err == nil {
			c.Warm.Count++
			c.Warm.CPUCores += l.CPUCores
			c.Warm.MemoryBytes += l.MemoryBytes
		}
	}
	m.warm.mu.Unlock()
	c.PodsMemoryBytes, c.WarmMemoryBytes = c.Pods.MemoryBytes, c.Warm.MemoryBytes
	return c, nil
}

// NodeStatus implements api.NodeStatuser.
func (m *Manager) NodeStatus(ctx context.Context) (*api.NodeStatus, error) {
	c, err := m.capacity(ctx)
	if err != nil {
		return nil, err
	}
	w := m.warm
	st := &api.NodeStatus{
		Capacity: api.NodeResources{CPUCores: c.CPUCores, MemoryBytes: c.MemoryBytes},
		Pods:     c.Pods, Warm: c.Warm,
		Free:     api.NodeResources{CPUCores: c.CPUCores - c.Pods.CPUCores - c.Warm.CPUCores, MemoryBytes: c.MemoryBytes - c.Pods.MemoryBytes - c.Warm.MemoryBytes},
		WarmPool: api.WarmPoolStatus{Enabled: w.enabled(), Max: w.cfg.Max, Recent: w.cfg.Recent, Entries: []api.WarmEntry{}},
	}
	w.mu.Lock()
	st.WarmPool.LastError = w.fillErr
	var es []warmEntry
	ips := map[string]string{}
	for _, e := range w.entries {
		es = append(es, *e)
		if e.u != nil && e.u.att != nil {
			ips[e.ID] = e.u.att.IP.String()
		}
	}
	w.mu.Unlock()
	sort.Slice(es, func(i, j int) bool { return es[i].Created.Before(es[j].Created) })
	for _, e := range es {
		l, _ := e.Resources.Limits()
		we := api.WarmEntry{ID: e.ID, Source: e.Source, Image: e.Image, Tier: e.Resources.Tier, CPUCores: l.CPUCores,
			MemoryLimit: l.MemoryBytes, Ready: e.Ready, Created: e.Created,
			MemoryBytes: cgroupMemory(m.cgroupsPath(e.ID)), DiskBytes: diskBlocks(m.podDir(e.ID))}
		we.IP = ips[e.ID]
		st.WarmPool.MemoryBytes += we.MemoryBytes
		st.WarmPool.DiskBytes += we.DiskBytes
		st.WarmPool.Entries = append(st.WarmPool.Entries, we)
	}
	return st, nil
}

// memTotal is the host's MemTotal in bytes (0 if unknown).
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cgroupMemory is the memory cgroup's usage (v1, else v2), 0 if unknown.
func cgroupMemory(path string) int64 {
	for _, f := range []string{"/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes", "/sys/fs/cgroup" + path + "/memory.current"} {
		if b, err := os.ReadFile(f); err == nil {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return n
		}
	}
	return 0
}

// diskBlocks is what the files under dir occupy (allocated blocks, so a
// sparse storage image counts for what it holds), not crossing mounts.
func diskBlocks(dir string) int64 {
	var root syscall.Stat_t
	if syscall.Lstat(dir, &root) != nil {
		return 0
	}
	var total int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var s syscall.Stat_t
		if syscall.Lstat(p, &s) != nil {
			return nil
		}
		if s.Dev != root.Dev {
			return fs.SkipDir
		}
		total += s.Blocks * 512
		return nil
	})
	return total
}
