package oci

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroupMounts returns the cgroup v1 hierarchy mount points (one per
// controller set, e.g. /sys/fs/cgroup/memory) and the v2 mount if any.
//
// The answer is kept once one is found: a node polls every running pod's
// memory cgroup, and with 100 pods (about 300 mounts) re-reading
// /proc/self/mountinfo each time cost the daemon 20% of a core. Cgroup
// hierarchies are mounted at boot and stay; the maps returned are shared
// and must not be modified.
func cgroupMounts() (v1 map[string]string, v2 string) {
	mountsMu.Lock()
	defer mountsMu.Unlock()
	if mountsV1 == nil || (len(mountsV1) == 0 && mountsV2 == "") {
		mountsV1, mountsV2 = readCgroupMounts()
	}
	return mountsV1, mountsV2
}

var (
	mountsMu sync.Mutex
	mountsV1 map[string]string
	mountsV2 string
)

func readCgroupMounts() (v1 map[string]string, v2 string) {
	v1 = map[string]string{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return v1, ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mountpoint ... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		switch qf[0] {
		case "cgroup":
			for _, o := range strings.Split(qf[2], ",") {
				switch o {
				case "cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio", "net_cls", "net_prio", "hugetlb", "perf_event", "rdma", "misc":
					v1[o] = pf[4]
				}
				if strings.HasPrefix(o, "name=") {
					v1[o] = pf[4]
				}
			}
		case "cgroup2":
			v2 = pf[4]
		}
	}
	return v1, v2
}

// cgroupDirs lists every existing directory of cgroupsPath across hierarchies.
func cgroupDirs(cgroupsPath string) []string {
	if cgroupsPath == "" {
		return nil
	}
	v1, v2 := cgroupMounts()
	seen := map[string]bool{}
	var dirs []string
	add := func(root string) {
		d := filepath.Join(root, cgroupsPath)
		if !seen[d] {
			seen[d] = true
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				dirs = append(dirs, d)
			}
		}
	}
	for _, root := range v1 {
		add(root)
	}
	if v2 != "" {
		add(v2)
	}
	return dirs
}

// RemoveCgroup removes cgroupsPath (and any empty children, deepest first)
// from every hierarchy. Missing is success. runsc removes a container's
// cgroup on delete; this is the idempotent backstop, and what removes a
// parent such as /pinacle once it is unused.
func RemoveCgroup(cgroupsPath string) error {
	if cgroupsPath == "" || filepath.Clean(cgroupsPath) == "/" {
		return nil
	}
	var errs []error
	for _, d := range cgroupDirs(cgroupsPath) {
		// Collect subdirectories deepest first; cgroupfs only allows rmdir.
		var sub []string
		// The walk's error is dropped: an unreadable entry is skipped, and
		// the rmdirs below report what could not be removed.
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			if err := rmdirRetry(sub[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// applyDeferredCPUQuota sets the quota a spec deferred to start time
// (AnnotationCPUQuota) on its cgroup, cgroup v1 (cpu.cfs_quota_us) or v2
// (cpu.max). A spec without one is left alone.
func applyDeferredCPUQuota(spec *specs.Spec) error {
	v, ok := spec.Annotations[AnnotationCPUQuota]
	if !ok || spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return nil
	}
	quota, err := strconv.ParseInt(v, 10, 64)
	if err != nil || quota <= 0 {
		return fmt.Errorf("cpu quota: annotation %s=%q: want a positive number of µs", AnnotationCPUQuota, v)
	}
	cg := spec.Linux.CgroupsPath
	v1, v2 := cgroupMounts()
	if root, ok := v1["cpu"]; ok {
		d := filepath.Join(root, cg)
		if err := os.WriteFile(filepath.Join(d, "cpu.cfs_period_us"), []byte(strconv.Itoa(CPUPeriod)), 0); err != nil {
			return fmt.Errorf("cpu quota: %w", err)
		}
		if err := os.WriteFile(filepath.Join(d, "cpu.cfs_quota_us"), []byte(strconv.FormatInt(quota, 10)), 0); err != nil {
			return fmt.Errorf("cpu quota: %w", err)
		}
		return nil
	}
	if v2 == "" {
		return fmt.Errorf("cpu quota: no cpu cgroup controller mounted")
	}
	if err := os.WriteFile(filepath.Join(v2, cg, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, CPUPeriod)), 0); err != nil {
		return fmt.Errorf("cpu quota: %w", err)
	}
	return nil
}

// RemoveCgroupIfUnused removes cgroupsPath from every hierarchy where it
// has no child cgroup and no task left; where it is still in use (another
// node on this host has pods under it) it stays, and that is not an error.
func RemoveCgroupIfUnused(cgroupsPath string) error {
	if cgroupsPath == "" || filepath.Clean(cgroupsPath) == "/" {
		return nil
	}
	var errs []error
	for _, d := range cgroupDirs(cgroupsPath) {
		err := os.Remove(d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOTEMPTY) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rmdirRetry retries EBUSY for a moment: a cgroup is busy until the last
// task (a just-killed sandbox) has been fully released by the kernel.
func rmdirRetry(d string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := os.Remove(d)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memoryEvents reads OOM evidence from the pod's memory cgroup.
type memoryEvents struct {
	ok        bool
	oomKills  uint64
	underOOM  bool
	failcnt   uint64
	maxUsage  uint64
	usage     uint64
	limit     uint64
	pidsLimit uint64
}

func readMemoryEvents(cgroupsPath string) memoryEvents {
	var ev memoryEvents
	kv, dir, v1 := memoryEventsKV(cgroupsPath)
	if kv == nil {
		return ev
	}
	ev.ok = true
	ev.oomKills = kv["oom_kill"]
	if v1 {
		ev.underOOM = kv["under_oom"] != 0
		ev.failcnt = readUint(filepath.Join(dir, "memory.failcnt"))
		ev.maxUsage = readUint(filepath.Join(dir, "memory.max_usage_in_bytes"))
		ev.usage = readUint(filepath.Join(dir, "memory.usage_in_bytes"))
		ev.limit = readUint(filepath.Join(dir, "memory.limit_in_bytes"))
	} else {
		ev.failcnt = kv["max"]
		ev.maxUsage = readUint(filepath.Join(dir, "memory.peak"))
		ev.usage = readUint(filepath.Join(dir, "memory.current"))
		ev.limit = readUint(filepath.Join(dir, "memory.max"))
	}
	if m1, _ := cgroupMounts(); m1["pids"] != "" {
		ev.pidsLimit = readUint(filepath.Join(m1["pids"], cgroupsPath, "pids.max"))
	}
	return ev
}

// memoryEventsKV reads the memory cgroup's event counters: v1's
// memory.oom_control or v2's memory.events. kv is nil when the cgroup
// cannot be read; dir is its directory.
func memoryEventsKV(cgroupsPath string) (kv map[string]uint64, dir string, v1 bool) {
	if cgroupsPath == "" {
		return nil, "", false
	}
	m1, m2 := cgroupMounts()
	if root, ok := m1["memory"]; ok {
		dir = filepath.Join(root, cgroupsPath)
		return readKV(filepath.Join(dir, "memory.oom_control")), dir, true
	}
	if m2 != "" {
		dir = filepath.Join(m2, cgroupsPath)
		return readKV(filepath.Join(dir, "memory.events")), dir, false
	}
	return nil, "", false
}

func readKV(path string) map[string]uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			m[f[0]] = v
		}
	}
	return m
}

// readUint reads a one-number cgroup file; "max" and errors read as 0.
func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// OOMKills returns how many processes the kernel's OOM killer has killed
// in the memory cgroup at cgroupsPath, and whether the cgroup could be
// read. A memcg OOM inside a gVisor sandbox usually kills one of the
// sandbox's host processes (the app dies, the sandbox lives), so the
// counter is how the node learns of it.
func OOMKills(cgroupsPath string) (uint64, bool) {
	// One file, not readMemoryEvents' six: this is polled for every pod.
	kv, _, _ := memoryEventsKV(cgroupsPath)
	if kv == nil {
		return 0, false
	}
	return kv["oom_kill"], true
}
