package main

// How many pods one node holds when all but 10 are hibernated (issue 13):
// n-10 httpd pods (a service and a host port each) are created and
// hibernated one after the other by a few workers, then 10 more are
// created and left running. Printed: the pods held, and where and why
// the run stopped if it did; per hibernated pod the disk, MemAvailable,
// host tasks, daemon memory and descriptors it takes, each beside the
// same figure for a running pod; what each resource would allow, and so
// the limiting one; and a wake through the host port of one hibernated
// pod at that count, beside one at the start. Everything it made is
// deleted at the end.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// countNet keeps this daemon's pool and ports apart from the other
// benchnode daemons' and the e2e suite's; a /16 holds 4096 pod /28s.
const countNet = "network: {pool: 10.216.0.0/16}\nports: {min: 48000, max: 49999, listenAddr: 127.0.0.1}\ngateway: {port: 44993}\nwarmPool: {max: 0}\n"

// countRunning is the pods left running, as the figure has it.
const countRunning = 10

// Stop adding pods before the machine itself is short.
const (
	countDiskFloor  = 4 << 30
	countAvailFloor = 2 << 30
)

// usage is what the host and the daemon hold at one moment.
type usage struct {
	avail, diskFree int64 // bytes
	unreclaim       int64 // the kernel's SUnreclaim: namespaces, links, rules, mounts
	tasks, fds      int   // host threads, daemon descriptors
	rssKB           int
	podsDisk        int64 // allocated bytes below the pods' directories
}

func (nd *node) usage() usage {
	var st syscall.Statfs_t
	_ = syscall.Statfs(nd.dir, &st)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", nd.cmd.Process.Pid))
	return usage{avail: memAvailableKB() << 10, unreclaim: meminfoKB("SUnreclaim:") << 10, diskFree: int64(st.Bavail) * st.Bsize, tasks: hostTasks(), fds: len(fds),
		rssKB: nd.rssKB(), podsDisk: dirSize(filepath.Join(nd.dir, "data", "pods"))}
}

// per is one resource's cost per pod between two readings.
type per struct {
	avail, unreclaim, disk, tasks, fds, rss float64
}

func costPer(a, b usage, n int) per {
	k := float64(max(n, 1))
	return per{avail: float64(a.avail-b.avail) / k, unreclaim: float64(b.unreclaim-a.unreclaim) / k, disk: float64(b.podsDisk-a.podsDisk) / k,
		tasks: float64(b.tasks-a.tasks) / k, fds: float64(b.fds-a.fds) / k, rss: float64(b.rssKB-a.rssKB) * 1024 / k}
}

func runHibernatedCount(bin string, n, workers int, budget time.Duration) error {
	if n <= countRunning {
		return fmt.Errorf("-hibernated %d: must be more than the %d left running", n, countRunning)
	}
	dir, err := os.MkdirTemp("", "pinacle-hibcount-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	nd, err := start(bin, dir, countNet)
	if err != nil {
		return err
	}
	defer nd.stop(bin)
	ctx := context.Background()
	defer deleteEvery(ctx, nd, workers)
	fmt.Printf("hibcount: host %d CPUs, MemAvailable %d MB, load %s, kernel.pid_max %d; %d pods, %d hibernated, %d workers\n",
		cpus(), memAvailableKB()/1024, loadavg(), pidMax(), n, n-countRunning, workers)

	// The first pod hibernated is the wake baseline: the same wake at 1
	// hibernated pod and at n-10.
	first, err := nd.client.Create(ctx, httpd("hc0"))
	if err != nil {
		return fmt.Errorf("create hc0: %w", err)
	}
	if _, err := nd.client.Hibernate(ctx, first.ID); err != nil {
		return fmt.Errorf("hibernate hc0: %w", err)
	}
	wake1, err := wakeOnce(ctx, nd, first.Ports[0].URL)
	if err != nil {
		return err
	}
	u0 := nd.usage()
	held, stopWhy, took := fillHibernated(ctx, nd, n-countRunning-1, workers, budget)
	held++ // hc0, hibernated again by wakeOnce
	u1 := nd.usage()
	hib := costPer(u0, u1, held-1)
	var runIDs []string
	if stopWhy == "" {
		for i := range countRunning {
			p, err := nd.client.Create(ctx, httpd(fmt.Sprintf("run%d", i)))
			if err != nil {
				stopWhy = fmt.Sprintf("creating running pod %d of %d: %v", i+1, countRunning, err)
				break
			}
			runIDs = append(runIDs, p.ID)
		}
	}
	time.Sleep(3 * time.Second) // the running sandboxes settle
	u2 := nd.usage()
	run := costPer(u1, u2, len(runIDs))
	var cg uint64
	for _, id := range runIDs {
		cg += cgroupMemory(id)
	}
	wakeN, werr := wakeOnce(ctx, nd, first.Ports[0].URL)

	fmt.Printf("hibcount: pods held: %d (%d hibernated, %d running) in %s\n", held+len(runIDs), held, len(runIDs), took.Round(time.Second))
	if stopWhy != "" {
		fmt.Printf("hibcount: stopped early: %s\n", stopWhy)
	}
	fmt.Printf("hibcount: per hibernated pod: disk %.1f MB, MemAvailable %.2f MB (of it kernel SUnreclaim %.2f MB, daemon RSS %.2f MB), host tasks %.1f, daemon fds %.1f\n",
		hib.disk/1e6, hib.avail/1e6, hib.unreclaim/1e6, hib.rss/1e6, hib.tasks, hib.fds)
	if len(runIDs) > 0 {
		fmt.Printf("hibcount: per running pod:    disk %.1f MB, MemAvailable %.2f MB (memory cgroup %.1f MB), host tasks %.1f\n",
			run.disk/1e6, run.avail/1e6, float64(cg)/float64(len(runIDs))/1e6, run.tasks)
		fmt.Printf("hibcount: a hibernated pod takes %.3fx the MemAvailable of a running one\n", hib.avail/max(run.avail, 1))
	}
	limits(u2, hib)
	if werr != nil {
		return fmt.Errorf("wake at %d hibernated pods: %w", held, werr)
	}
	fmt.Printf("hibcount: wake -> first byte via host port: %s with %d pods hibernated, %s with 1 (%.2fx)\n",
		wakeN.Round(time.Millisecond), held, wake1.Round(time.Millisecond), float64(wakeN)/float64(wake1))
	return nil
}

// fillHibernated creates and hibernates k pods with a few workers, and
// stops at the first failure, when the disk or memory runs short, or
// when budget (0: none) has passed.
func fillHibernated(ctx context.Context, nd *node, k, workers int, budget time.Duration) (held int, stopWhy string, took time.Duration) {
	var (
		next, done atomic.Int64
		mu         sync.Mutex
		t0         = time.Now()
	)
	stop := func(why string) {
		mu.Lock()
		defer mu.Unlock()
		if stopWhy == "" {
			stopWhy = why
		}
	}
	stopped := func() bool { mu.Lock(); defer mu.Unlock(); return stopWhy != "" }
	var g errgroup.Group
	for range workers {
		g.Go(func() error {
			for !stopped() {
				i := int(next.Add(1))
				if i > k {
					return nil
				}
				if budget > 0 && time.Since(t0) > budget {
					stop(fmt.Sprintf("the time budget of %s passed (-hibernated-budget)", budget))
					return nil
				}
				name := fmt.Sprintf("hc%d", i)
				p, err := nd.client.Create(ctx, httpd(name))
				if err != nil {
					stop(fmt.Sprintf("creating pod %d: %v", i, err))
					return nil
				}
				if _, err := nd.client.Hibernate(ctx, p.ID); err != nil {
					stop(fmt.Sprintf("hibernating pod %d: %v", i, err))
					return nil
				}
				d := done.Add(1)
				if d%50 == 0 {
					u := nd.usage()
					fmt.Printf("hibcount: %4d hibernated after %s: MemAvailable %d MB, disk free %d GB, host tasks %d, load %s\n",
						d, time.Since(t0).Round(time.Second), u.avail>>20, u.diskFree>>30, u.tasks, loadavg())
					switch {
					case u.diskFree < countDiskFloor:
						stop(fmt.Sprintf("disk free under %d GB", countDiskFloor>>30))
					case u.avail < countAvailFloor:
						stop(fmt.Sprintf("MemAvailable under %d GB", countAvailFloor>>30))
					}
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	return int(done.Load()), stopWhy, time.Since(t0)
}

// limits prints how many more hibernated pods each of the machine's
// resources allows at the last reading, and which runs out first; the
// node's configured pools are printed apart (node.yaml sets them).
func limits(u usage, hib per) {
	type lim struct {
		name string
		n    float64
	}
	ls := []lim{
		{"disk", float64(u.diskFree) / max(hib.disk, 1)},
		{"memory (MemAvailable)", float64(u.avail) / max(hib.avail, 1)},
		{"host tasks (kernel.pid_max)", float64(pidMax()-u.tasks) / max(hib.tasks, 0.01)},
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && hib.fds > 0 {
		ls = append(ls, lim{"daemon descriptors (RLIMIT_NOFILE)", float64(int(rl.Cur)-u.fds) / hib.fds})
	}
	first := ls[0]
	for _, l := range ls {
		fmt.Printf("hibcount: room for about %.0f more hibernated pods by %s\n", l.n, l.name)
		if l.n < first.n {
			first = l
		}
	}
	fmt.Printf("hibcount: the machine's limit: %s; the node's configured pools come first here (this bench's: 2000 host ports, one a pod; 4096 /28 subnets; node.yaml sets both)\n", first.name)
}

// wakeOnce wakes the hibernated pod behind url through its host port,
// timing the first byte, and hibernates it again.
func wakeOnce(ctx context.Context, nd *node, url string) (time.Duration, error) {
	t0 := time.Now()
	if err := firstByte(url+"/hostname", time.Minute); err != nil {
		return 0, fmt.Errorf("wake through the host port: %w", err)
	}
	d := time.Since(t0)
	_, err := nd.client.Hibernate(ctx, "hc0")
	return d, err
}

// deleteEvery deletes every pod of the daemon, a few at a time, with
// progress: at a thousand pods this takes minutes.
func deleteEvery(ctx context.Context, nd *node, workers int) {
	list, err := nd.client.List(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hibcount: listing pods to delete:", err)
		return
	}
	t0 := time.Now()
	var g errgroup.Group
	g.SetLimit(workers)
	var done atomic.Int64
	var errs []error
	var mu sync.Mutex
	for _, p := range list {
		g.Go(func() error {
			if err := nd.client.Delete(ctx, p.ID); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			if d := done.Add(1); d%200 == 0 {
				fmt.Printf("hibcount: deleted %d of %d\n", d, len(list))
			}
			return nil
		})
	}
	_ = g.Wait()
	fmt.Printf("hibcount: deleted %d pods in %s\n", len(list), time.Since(t0).Round(time.Second))
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "hibcount: deleting:", err)
	}
}

// meminfoKB reads one /proc/meminfo field, in kB.
func meminfoKB(field string) int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == field {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}
