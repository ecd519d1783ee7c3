package main

// Memory per idle running pod (issue 14, part 3): the drop of MemAvailable
// per pod over n idle busybox pods (init only, no services), and the mean
// of their memory cgroups' usage, beside baselines from the same run: the
// same pods' own bundles run by bare runsc (the node's flags), once as
// they are (pinacle-init) and once with `sleep` as the process (gVisor's
// floor), and any variants asked for (-memory-variant). Where it goes is
// printed from the cgroups' memory.stat and the host processes' status.
// docs/runtime.md, "Memory per idle pod", has the figures.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
)

// nodeRunscFlags are the global flags the node gives runsc (oci/runsc.go),
// which the bare baselines use too.
var nodeRunscFlags = []string{"--platform=systrap", "--overlay2=none", "--network=sandbox"}

// memVariant is one way of running the pods' bundles with bare runsc.
type memVariant struct {
	name  string
	flags []string // extra runsc global flags
	args  []string // the process, if not the bundle's
	init  string   // a pinacle-init binary to bind-mount instead of the node's
	env   []string // added to the process environment
}

// parseVariant reads NAME:TOKEN... where a token is init=PATH, env=K=V,
// args=A,B,... or a runsc flag (--x=y).
func parseVariant(s string) (memVariant, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return memVariant{}, fmt.Errorf("memory variant %q: want NAME:TOKEN... (init=PATH, env=K=V, args=A,B, --runsc-flag)", s)
	}
	v := memVariant{name: name}
	for _, t := range strings.Fields(rest) {
		switch {
		case strings.HasPrefix(t, "init="):
			v.init = strings.TrimPrefix(t, "init=")
		case strings.HasPrefix(t, "env="):
			v.env = append(v.env, strings.TrimPrefix(t, "env="))
		case strings.HasPrefix(t, "args="):
			v.args = strings.Split(strings.TrimPrefix(t, "args="), ",")
		case strings.HasPrefix(t, "--"):
			v.flags = append(v.flags, t)
		default:
			return memVariant{}, fmt.Errorf("memory variant %q: token %q: want init=PATH, env=K=V, args=A,B or --flag", s, t)
		}
	}
	return v, nil
}

// memSample is what n sandboxes hold.
type memSample struct {
	name       string
	n          int
	availDrop  float64 // bytes per sandbox
	cgroup     float64 // bytes per sandbox
	stat       map[string]float64
	procs      map[string]procMem // by process kind, per sandbox
	kmem       float64
	sampleNote string
}

func runMemory(bin string, n int, variantSpecs []string) error {
	variants := []memVariant{{name: "bare runsc, the pods' bundles (pinacle-init)"},
		{name: "bare runsc, the same bundles, process sleep (gVisor's floor)", args: []string{"/bin/sleep", "1000000000"}}}
	for _, s := range variantSpecs {
		v, err := parseVariant(s)
		if err != nil {
			return err
		}
		variants = append(variants, v)
	}
	return withNode(bin, func(nd *node) error {
		ctx := context.Background()
		// One pod first, so the image, spares and the daemon's own growth
		// are not counted against the n.
		first, err := nd.client.Create(ctx, plain("mem-warmup"))
		if err != nil {
			return err
		}
		time.Sleep(3 * time.Second)
		before := memAvailable()
		var pods []*api.Pod
		for i := 0; i < n; i++ {
			p, err := nd.client.Create(ctx, plain(fmt.Sprintf("mem%d", i)))
			if err != nil {
				return err
			}
			pods = append(pods, p)
		}
		time.Sleep(10 * time.Second) // let the sandboxes settle
		var ids []string
		for _, p := range pods {
			ids = append(ids, p.ID)
		}
		podSample := sampleMemory("pinacle-node pods", before, ids)
		// The baselines run the same pods' bundles with runsc alone, the
		// pods hibernated meanwhile (their network and rootfs stay).
		for _, p := range pods {
			if _, err := nd.client.Hibernate(ctx, p.ID); err != nil {
				return err
			}
		}
		samples := []memSample{podSample}
		for _, v := range variants {
			s, err := bareMemory(nd, pods, v)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			samples = append(samples, s)
		}
		printMemory(samples)
		return nd.client.Delete(ctx, first.ID)
	})
}

// bareMemory runs every pod's bundle under v with bare runsc, samples what
// they hold and removes them.
func bareMemory(nd *node, pods []*api.Pod, v memVariant) (memSample, error) {
	root := nd.dir + "/runsc"
	var started []string
	defer func() {
		for _, id := range started {
			_ = exec.Command("runsc", "--root", root, "delete", "--force", id).Run()
		}
	}()
	time.Sleep(3 * time.Second)
	before := memAvailable()
	var cgs []string
	for _, p := range pods {
		id := "base-" + p.ID
		bundle, err := variantBundle(nd, p, id, v)
		if err != nil {
			return memSample{}, err
		}
		if _, err := readdAddress(nd, p); err != nil {
			return memSample{}, err
		}
		args := append(append(append([]string{"--root", root}, nodeRunscFlags...), v.flags...), "run", "--detach", "--bundle", bundle, id)
		if err := runscDetached(filepath.Join(nd.dir, "bundles", id+".log"), args); err != nil {
			return memSample{}, err
		}
		started = append(started, id)
		cgs = append(cgs, id)
	}
	time.Sleep(10 * time.Second)
	s := sampleMemory(v.name, before, cgs)
	return s, nil
}

// runscDetached runs runsc with a file as its stdio: the sandbox inherits
// it, and a pipe would never reach EOF (design.md).
func runscDetached(logPath string, args []string) error {
	out, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("runsc", args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("runsc %s: %v: %s", strings.Join(args, " "), err, b)
	}
	return nil
}

// variantBundle writes a copy of p's bundle for v, with its own cgroup
// (/pinacle/<id>, beside the pods') and v's process changes.
func variantBundle(nd *node, p *api.Pod, id string, v memVariant) (string, error) {
	src := filepath.Join(nd.dir, "data", "pods", p.ID, "bundle", "config.json")
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return "", err
	}
	proc := spec["process"].(map[string]any)
	if v.args != nil {
		proc["args"] = v.args
	}
	if len(v.env) > 0 {
		env, _ := proc["env"].([]any)
		for _, e := range v.env {
			env = append(env, e)
		}
		proc["env"] = env
	}
	spec["linux"].(map[string]any)["cgroupsPath"] = "/pinacle/" + id
	if v.init != "" {
		found := false
		for _, m := range spec["mounts"].([]any) {
			mm := m.(map[string]any)
			if strings.HasSuffix(mm["destination"].(string), "/pinacle-init") {
				mm["source"], found = v.init, true
			}
		}
		if !found {
			return "", fmt.Errorf("bundle of %s: no mount of pinacle-init to replace", p.ID)
		}
	}
	dir := filepath.Join(nd.dir, "bundles", id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out, _ := json.Marshal(spec)
	return dir, os.WriteFile(filepath.Join(dir, "config.json"), out, 0o644)
}

// sampleMemory reads what the cgroups /pinacle/<id> hold, per sandbox.
func sampleMemory(name string, availBefore uint64, ids []string) memSample {
	after := memAvailable()
	n := float64(len(ids))
	s := memSample{name: name, n: len(ids), availDrop: float64(int64(availBefore)-int64(after)) / n,
		stat: map[string]float64{}, procs: map[string]procMem{}}
	for _, id := range ids {
		s.cgroup += float64(cgroupMemory(id)) / n
		for k, v := range cgroupStat(id) {
			s.stat[k] += v / n
		}
		s.kmem += float64(cgroupFile(id, "memory.kmem.usage_in_bytes")) / n
		for kind, m := range cgroupProcs(id) {
			pm := s.procs[kind]
			pm.count += m.count / n
			pm.anon += m.anon / n
			pm.file += m.file / n
			pm.shmem += m.shmem / n
			pm.pte += m.pte / n
			pm.threads += m.threads / n
			s.procs[kind] = pm
		}
	}
	return s
}

func printMemory(samples []memSample) {
	pods, floor := samples[0], samples[2]
	fmt.Printf("memory-bench: idle busybox pod (init, no services), n=%d, load %s:\n", pods.n, loadavg())
	for i, s := range samples {
		fmt.Printf("memory-bench:   %-62s memory cgroup %5.1f MB per sandbox (%.2fx the floor), MemAvailable drop %5.1f MB\n",
			s.name, s.cgroup/1e6, s.cgroup/floor.cgroup, s.availDrop/1e6)
		if i == 0 {
			fmt.Printf("memory-bench:     target 15 MB: the pods are %.1f MB above gVisor's floor (sleep in the same bundle, bare runsc)\n", (pods.cgroup-floor.cgroup)/1e6)
		}
	}
	fmt.Println("memory-bench: where it goes, per sandbox (memory.stat: rss = anonymous, shmem = the sandbox's memory file, mapped_file/cache = host page cache; kmem = kernel memory charged to the cgroup: page tables, stacks, slab):")
	for _, s := range samples {
		fmt.Printf("memory-bench:   %-62s rss %4.1f  shmem %4.1f  cache-shmem %4.1f  mapped_file %4.1f  kmem %4.1f MB\n", s.name,
			s.stat["total_rss"]/1e6, s.stat["total_shmem"]/1e6, (s.stat["total_cache"]-s.stat["total_shmem"])/1e6,
			s.stat["total_mapped_file"]/1e6, s.kmem/1e6)
		for _, kind := range []string{"sentry", "gofer", "stub"} {
			if m, ok := s.procs[kind]; ok {
				fmt.Printf("memory-bench:     %-8s x%.0f, %3.0f threads: RssAnon %5.1f  RssFile %5.1f  RssShmem %5.1f  page tables %4.2f MB\n",
					kind, m.count, m.threads, m.anon/1e6, m.file/1e6, m.shmem/1e6, m.pte/1e6)
			}
		}
	}
}

func cgroupFile(id, file string) uint64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory/pinacle/" + id + "/" + file)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

func cgroupStat(id string) map[string]float64 {
	out := map[string]float64{}
	b, _ := os.ReadFile("/sys/fs/cgroup/memory/pinacle/" + id + "/memory.stat")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}

// procMem is what one kind of host process holds (/proc/PID/status).
type procMem struct {
	count, anon, file, shmem, pte, threads float64
}

// cgroupProcs sums /proc/PID/status of the cgroup's processes by kind.
// Shared pages (the memory file mapped by sentry and stubs) show in each
// process's RssShmem; the cgroup counts them once.
func cgroupProcs(id string) map[string]procMem {
	out := map[string]procMem{}
	b, _ := os.ReadFile("/sys/fs/cgroup/memory/pinacle/" + id + "/cgroup.procs")
	for _, pid := range strings.Fields(string(b)) {
		st, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			continue
		}
		kind := procKind(pid)
		m := out[kind]
		m.count++
		for _, l := range strings.Split(string(st), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "RssAnon:":
				m.anon += v * 1024
			case "RssFile:":
				m.file += v * 1024
			case "RssShmem:":
				m.shmem += v * 1024
			case "VmPTE:":
				m.pte += v * 1024
			case "Threads:":
				m.threads += v
			}
		}
		out[kind] = m
	}
	return out
}

// procKind tells runsc's processes apart by their command line: runsc
// names them in argv[0] (runsc-sandbox, runsc-gofer); the rest are the
// systrap stubs.
func procKind(pid string) string {
	b, _ := os.ReadFile("/proc/" + pid + "/cmdline")
	argv0, _, _ := strings.Cut(string(b), "\x00")
	switch {
	case strings.Contains(argv0, "runsc-sandbox"):
		return "sentry"
	case strings.Contains(argv0, "runsc-gofer"):
		return "gofer"
	}
	return "stub" // runsc puts nothing else in the cgroup: the systrap stubs, which hold the application's address spaces

}
