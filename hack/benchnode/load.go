package main

// The load figures of issue 15 (`make load`, `benchnode -load-only`):
// create/delete churn by many clients against the same work done by one,
// then as many idle pods as the machine holds, with what each one costs
// (memory, CPU) and where creates begin to slow or fail. docs/load.md
// says what the figures mean.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinacle/pinacle-node/podspec"
	"golang.org/x/sync/errgroup"
)

// loadNet keeps the load daemon's pool and ports apart from the other
// benchnode daemons and from the e2e daemons (10.100-10.253 /16s are
// theirs from the bottom up; 10.215 is above what a suite run reaches).
const loadNet = "network: {pool: 10.215.0.0/16}\nports: {min: 47000, max: 47999, listenAddr: 127.0.0.1}\ngateway: {port: 44992}\n"

type loadOpts struct {
	clients, rounds int
	maxIdle, step   int
	memBudgetMB     int // stop adding idle pods once their memory cgroups hold this much
	availFloorMB    int // ... or once the host's MemAvailable falls below this
	window          time.Duration
	churnOnly       bool
	idleOnly        bool
	idleKind        string  // plain (init only), service (busybox httpd with an http health check, host port) or service-nocheck
	taskShare       int     // stop adding idle pods once the host's tasks reach this percent of kernel.pid_max
	profileAt       int     // print where the pods' CPU goes at the first step with this many pods
	slowFactor      float64 // stop adding idle pods once a step's create p50 is this multiple of the first step's (0: never)
}

func runLoad(bin string, o loadOpts) error {
	dir, err := os.MkdirTemp("", "pinacle-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	nd, err := start(bin, dir, loadNet)
	if err != nil {
		return err
	}
	defer nd.stop(bin)
	ctx := context.Background()
	fmt.Printf("load: host %d CPUs, MemAvailable %d MB, load %s\n", cpus(), memAvailableKB()/1024, loadavg())
	if !o.idleOnly {
		if err := churnFigures(ctx, nd, o); err != nil {
			return err
		}
	}
	if o.churnOnly {
		return nil
	}
	return idleFigures(ctx, nd, o)
}

// churn is one run of create (to running) and delete by some clients.
type churn struct {
	took            time.Duration
	creates, delets []time.Duration
	errs            []error
}

func (c churn) rate() float64 {
	return float64(len(c.creates)) / c.took.Seconds()
}

// runChurn has clients clients each create and delete rounds pods, one
// after the other; every error is kept and the clients go on.
func runChurn(ctx context.Context, nd *node, tag string, clients, rounds int) churn {
	var mu sync.Mutex
	var c churn
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				name := fmt.Sprintf("%s-%d-%d", tag, i, r)
				t1 := time.Now()
				p, err := nd.client.Create(ctx, plain(name))
				tc := time.Since(t1)
				var td time.Duration
				if err == nil {
					t2 := time.Now()
					err = nd.client.Delete(ctx, p.ID)
					td = time.Since(t2)
				} else {
					err = fmt.Errorf("create %s: %w", name, err)
					_ = nd.client.Delete(ctx, name)
				}
				mu.Lock()
				if err != nil {
					c.errs = append(c.errs, err)
				} else {
					c.creates = append(c.creates, tc)
					c.delets = append(c.delets, td)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.took = time.Since(t0)
	return c
}

// churnFigures: the same number of create+delete pairs by one client,
// then by o.clients at once; the figure is the ratio of their rates.
func churnFigures(ctx context.Context, nd *node, o loadOpts) error {
	total := o.clients * o.rounds
	fmt.Printf("load: churn: %d create(wait)+delete pairs of a busybox pod, 1 client, then %d clients x %d rounds\n", total, o.clients, o.rounds)
	serial := runChurn(ctx, nd, "ser", 1, total)
	conc := runChurn(ctx, nd, "con", o.clients, o.rounds)
	for _, c := range []struct {
		name string
		ch   churn
	}{{"1 client", serial}, {fmt.Sprintf("%d clients", o.clients), conc}} {
		fmt.Printf("load: churn %-10s: %d ok, %d errors in %s: %.2f pods/s; create p50 %s p95 %s; delete p50 %s p95 %s\n",
			c.name, len(c.ch.creates), len(c.ch.errs), c.ch.took.Round(time.Millisecond), c.ch.rate(),
			pct(c.ch.creates, 50), pct(c.ch.creates, 95), pct(c.ch.delets, 50), pct(c.ch.delets, 95))
		for i, err := range c.ch.errs {
			if i == 5 {
				fmt.Printf("load:   ... %d more\n", len(c.ch.errs)-5)
				break
			}
			fmt.Printf("load:   error: %v\n", err)
		}
	}
	fmt.Printf("load: churn throughput, %d clients / 1 client: %.2fx (errors: %d)\n", o.clients, conc.rate()/serial.rate(), len(conc.errs)+len(serial.errs))
	left, err := nd.client.List(ctx)
	if err != nil {
		return err
	}
	if len(left) != 0 {
		return fmt.Errorf("churn left %d pods behind", len(left))
	}
	return nil
}

// idleStep is what the machine looked like with n idle pods.
type idleStep struct {
	n           int
	createP50   time.Duration
	createMax   time.Duration
	availDropMB float64
	cgroupMB    float64 // the pods' memory cgroups (usage_in_bytes) together
	cpu         cpuSplit
	tasks       int // every task (thread) on the host
	podTasks    int // tasks in the pods' cgroups and their gofers
}

// idleFigures adds idle pods o.step at a time (4 creates at once) until
// o.maxIdle, a create fails, or the memory limits of the run are reached;
// after each step it measures memory and CPU.
func idleFigures(ctx context.Context, nd *node, o loadOpts) error {
	fmt.Printf("load: idle pods (%s): adding %d at a time (4 creates at once) up to %d; stop at a failed create, %d MB in the pods' memory cgroups or MemAvailable under %d MB\n",
		o.idleKind, o.step, o.maxIdle, o.memBudgetMB, o.availFloorMB)
	avail0 := memAvailableKB()
	base, err := sampleCPU(ctx, nd, nil, o.window)
	if err != nil {
		return err
	}
	fmt.Printf("load: idle   0 pods: %s\n", base)
	var ids []string
	var steps []idleStep
	var stopWhy string
	profiled := false
	for len(ids) < o.maxIdle && stopWhy == "" {
		times, made, err := addIdle(ctx, nd, o.idleKind, len(ids), min(o.step, o.maxIdle-len(ids)))
		ids = append(ids, made...)
		if err != nil {
			stopWhy = fmt.Sprintf("a create failed at %d pods: %v", len(ids)+1, err)
		}
		if len(times) == 0 {
			break
		}
		time.Sleep(2 * time.Second) // let the last boots settle before sampling
		cpu, cerr := sampleCPU(ctx, nd, ids, o.window)
		if cerr != nil {
			return cerr
		}
		st := idleStep{n: len(ids), createP50: pct(times, 50), createMax: slices.Max(times), cpu: cpu,
			availDropMB: float64(avail0-memAvailableKB()) / 1024, cgroupMB: float64(cgroupMemBytes(ids)) / (1 << 20),
			tasks: hostTasks(), podTasks: podTasks(ids)}
		steps = append(steps, st)
		fmt.Printf("load: idle %3d pods: create p50 %s max %s (%.1fx the first step's p50); MemAvailable -%.0f MB (%.1f MB/pod), memory cgroups %.0f MB (%.1f MB/pod); %s, %.2f%% of a CPU per pod\n",
			st.n, st.createP50, st.createMax.Round(time.Millisecond), float64(st.createP50)/float64(steps[0].createP50),
			st.availDropMB, st.availDropMB/float64(st.n), st.cgroupMB, st.cgroupMB/float64(st.n), cpu, cpu.podsPct()/float64(st.n))
		fmt.Printf("load: idle %3d pods: tasks: %d on the host (kernel.pid_max %d), %.1f per pod (sandbox, its stubs, gofer)\n",
			st.n, st.tasks, pidMax(), float64(st.podTasks)/float64(st.n))
		if st.n >= o.profileAt && !profiled {
			profiled = true
			if err := threadProfile(ctx, ids, o.window); err != nil {
				return err
			}
		}
		switch {
		case st.cgroupMB >= float64(o.memBudgetMB):
			stopWhy = fmt.Sprintf("the pods' memory reached the run's budget of %d MB", o.memBudgetMB)
		case memAvailableKB()/1024 < int64(o.availFloorMB):
			stopWhy = fmt.Sprintf("MemAvailable fell below the run's floor of %d MB", o.availFloorMB)
		case o.slowFactor > 0 && float64(st.createP50) >= o.slowFactor*float64(steps[0].createP50):
			stopWhy = fmt.Sprintf("creates slowed to %.1fx the first step's p50 (-load-slow-factor %.1f)", float64(st.createP50)/float64(steps[0].createP50), o.slowFactor)
		case st.tasks*100 >= pidMax()*o.taskShare:
			stopWhy = fmt.Sprintf("the host's tasks (%d) reached %d%% of kernel.pid_max (%d)", st.tasks, o.taskShare, pidMax())
		}
	}
	if stopWhy == "" {
		stopWhy = fmt.Sprintf("reached -load-max-idle %d", o.maxIdle)
	}
	fmt.Printf("load: idle pods held: %d (stopped: %s)\n", len(ids), stopWhy)
	return deleteAll(ctx, nd, ids)
}

// addIdle creates n plain pods named idle<from>.., four at a time, and
// returns each successful create's time and the IDs made.
func addIdle(ctx context.Context, nd *node, kind string, from, n int) ([]time.Duration, []string, error) {
	var mu sync.Mutex
	var times []time.Duration
	var ids []string
	var g errgroup.Group
	g.SetLimit(4)
	for i := from; i < from+n; i++ {
		g.Go(func() error {
			t0 := time.Now()
			req := plain(fmt.Sprintf("idle%d", i))
			if kind != "plain" {
				req = httpd(req.Spec.Name)
			}
			if kind == "service" {
				req.Spec.Services[0].HealthCheck = &podspec.HealthCheck{Type: podspec.HealthHTTP, Port: 8080, Path: "/hostname"}
			}
			p, err := nd.client.Create(ctx, req)
			if err != nil {
				_ = nd.client.Delete(ctx, fmt.Sprintf("idle%d", i))
				return err
			}
			mu.Lock()
			times = append(times, time.Since(t0))
			ids = append(ids, p.ID)
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	return times, ids, err
}

func deleteAll(ctx context.Context, nd *node, ids []string) error {
	t0 := time.Now()
	var failed atomic.Int32
	var g errgroup.Group
	g.SetLimit(8)
	for _, id := range ids {
		g.Go(func() error {
			if err := nd.client.Delete(ctx, id); err != nil {
				failed.Add(1)
				return err
			}
			return nil
		})
	}
	err := g.Wait()
	fmt.Printf("load: deleted %d idle pods in %s (%d failed)\n", len(ids), time.Since(t0).Round(time.Millisecond), failed.Load())
	return err
}

// cpuSplit is where the CPU went during one sampling window, in percent
// of one CPU.
type cpuSplit struct {
	host    float64 // every CPU busy (from /proc/stat), whoever used it
	sandbox float64 // the pods' cpuacct cgroups: sentry, systrap stubs, the pods' processes
	gofer   float64 // the pods' runsc-gofer processes (outside the pod cgroup)
	daemon  float64 // pinacle-node serve
	load1   string
}

func (c cpuSplit) podsPct() float64 { return c.sandbox + c.gofer }

func (c cpuSplit) String() string {
	s := fmt.Sprintf("CPU (%% of one): host %.0f, pods' cgroups %.1f, gofers %.1f, daemon %.1f; load1 %s", c.host, c.sandbox, c.gofer, c.daemon, c.load1)
	return s
}

// sampleCPU measures, over window, the CPU of the host, of the pods'
// cgroups, of their gofers and of the daemon.
func sampleCPU(ctx context.Context, nd *node, ids []string, window time.Duration) (cpuSplit, error) {
	gofers := goferPids(ids)
	h0, c0, g0, d0 := hostBusyTicks(), cgroupCPUNanos(ids), procTicks(gofers), procTicks([]int{nd.cmd.Process.Pid})
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return cpuSplit{}, ctx.Err()
	case <-time.After(window):
	}
	secs := time.Since(t0).Seconds()
	h1, c1, g1, d1 := hostBusyTicks(), cgroupCPUNanos(ids), procTicks(gofers), procTicks([]int{nd.cmd.Process.Pid})
	const hz = 100 // USER_HZ
	return cpuSplit{
		host:    100 * float64(h1-h0) / hz / secs,
		sandbox: 100 * float64(c1-c0) / 1e9 / secs,
		gofer:   100 * float64(g1-g0) / hz / secs,
		daemon:  100 * float64(d1-d0) / hz / secs,
		load1:   strings.Fields(loadavg())[0],
	}, nil
}

// hostBusyTicks is every CPU's non-idle time from /proc/stat.
func hostBusyTicks() uint64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	var busy uint64
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy
}

// cgroupCPUNanos sums the pods' cpuacct.usage (cgroup v1; the pods'
// cgroups live under /pinacle/<id>).
func cgroupCPUNanos(ids []string) uint64 {
	var sum uint64
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct/pinacle", id, "cpuacct.usage"))
		if err != nil {
			continue
		}
		v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		sum += v
	}
	return sum
}

// cgroupMemBytes sums the pods' memory.usage_in_bytes.
func cgroupMemBytes(ids []string) uint64 {
	var sum uint64
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory/pinacle", id, "memory.usage_in_bytes"))
		if err != nil {
			continue
		}
		v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		sum += v
	}
	return sum
}

// goferPids finds the runsc-gofer process of each pod by its command
// line (the container ID is its last argument).
func goferPids(ids []string) []int {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && args[0] == "runsc-gofer" && want[args[len(args)-1]] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procTicks sums utime+stime of pids (with their threads).
func procTicks(pids []int) uint64 {
	var sum uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		sum += u + st
	}
	return sum
}

func memAvailableKB() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "MemAvailable:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func cpus() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// threadProfile says where the pods' CPU goes over window: every thread
// of every process in their cgroups, grouped by process kind (the sentry,
// which is the runsc-sandbox process, or one of its systrap stub
// processes, where the pods' own programs run) and thread name, with its
// CPU and its context switches per second (wakeups).
func threadProfile(ctx context.Context, ids []string, window time.Duration) error {
	type acc struct {
		ticks, switches uint64
		n               int
	}
	read := func() map[string]acc {
		out := map[string]acc{}
		for _, id := range ids {
			b, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct/pinacle", id, "cgroup.procs"))
			pids := strings.Fields(string(b))
			for _, pid := range pids {
				kind := "stub"
				if ppid := statField(filepath.Join("/proc", pid, "stat"), 1); !slices.Contains(pids, ppid) {
					kind = "sentry"
				}
				tasks, _ := os.ReadDir(filepath.Join("/proc", pid, "task"))
				for _, t := range tasks {
					dir := filepath.Join("/proc", pid, "task", t.Name())
					comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
					u, _ := strconv.ParseUint(statField(filepath.Join(dir, "stat"), 11), 10, 64)
					sy, _ := strconv.ParseUint(statField(filepath.Join(dir, "stat"), 12), 10, 64)
					out[kind+" "+strings.TrimSpace(string(comm))+" "+t.Name()] = acc{ticks: u + sy, switches: ctxSwitches(filepath.Join(dir, "status"))}
				}
			}
		}
		return out
	}
	a0 := read()
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	secs := time.Since(t0).Seconds()
	a1 := read()
	byName := map[string]*acc{}
	for k, v := range a1 {
		f := strings.Fields(k)
		name := f[0] + " " + strings.Join(f[1:len(f)-1], " ")
		b := byName[name]
		if b == nil {
			b = &acc{}
			byName[name] = b
		}
		b.n++
		if p, ok := a0[k]; ok {
			b.ticks += v.ticks - p.ticks
			b.switches += v.switches - p.switches
		}
	}
	names := make([]string, 0, len(byName))
	for k := range byName {
		names = append(names, k)
	}
	slices.SortFunc(names, func(x, y string) int { return int(byName[y].switches) - int(byName[x].switches) })
	fmt.Printf("load: where the CPU of %d idle pods goes (threads in their cgroups by process kind and name, over %s):\n", len(ids), window)
	for _, k := range names {
		b := byName[k]
		fmt.Printf("load:   %-22s %5d threads  %6.1f%% of a CPU  %8.0f wakeups/s (%.1f per pod)\n", k, b.n,
			float64(b.ticks)/secs, float64(b.switches)/secs, float64(b.switches)/secs/float64(len(ids)))
	}
	return nil
}

// statField returns field i (0 = the state after the command name) of a
// /proc stat file, or "".
func statField(path string, i int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(b)
	r := strings.LastIndexByte(s, ')')
	if r < 0 {
		return ""
	}
	f := strings.Fields(s[r+1:])
	if i >= len(f) {
		return ""
	}
	return f[i]
}

// ctxSwitches reads a task's voluntary and involuntary context switches.
func ctxSwitches(status string) uint64 {
	b, _ := os.ReadFile(status)
	var sum uint64
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.HasSuffix(f[0], "ctxt_switches:") {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			sum += v
		}
	}
	return sum
}

func pidMax() int {
	b, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return v
}

// hostTasks counts every thread on the host: each takes a PID.
func hostTasks() int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		ts, _ := os.ReadDir(filepath.Join("/proc", e.Name(), "task"))
		n += len(ts)
	}
	return n
}

// podTasks counts the tasks in the pods' cgroups and their gofers' threads.
func podTasks(ids []string) int {
	n := 0
	for _, id := range ids {
		b, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids/pinacle", id, "tasks"))
		n += len(strings.Fields(string(b)))
	}
	for _, pid := range goferPids(ids) {
		ts, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		n += len(ts)
	}
	return n
}
