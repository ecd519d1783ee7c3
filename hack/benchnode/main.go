// Command benchnode measures the node's figures (issue 4) against a real
// daemon it starts with a private config: create -> running for 1 and for
// 10 concurrent creates, create -> first HTTP answer through the forwarded
// host port, `pod ls` with 100 pods, and daemon RSS with 0 and 50 pods;
// and the forwarder's throughput (1 GiB from a pod) direct to the pod IP,
// through the host port on the kernel path (DNAT), and through the host
// port of a second daemon with ports.kernelForward: false (userspace
// relay), in the same run.
//
//	go run ./hack/benchnode -bin bin/pinacle-node
//	go run ./hack/benchnode -bin bin/pinacle-node -forward-only
//	go run ./hack/benchnode -bin bin/pinacle-node -gateway-only
//	go run ./hack/benchnode -bin bin/pinacle-node -hibernated 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/testimage"
	"github.com/pinacle/pinacle-node/podspec"
)

const ref = "pinacle.local/busybox:latest"

func main() {
	bin := flag.String("bin", "bin/pinacle-node", "pinacle-node binary (static)")
	n := flag.Int("n", 20, "sequential creates measured")
	lsPods := flag.Int("ls-pods", 100, "pods present for the `pod ls` figure")
	forwardOnly := flag.Bool("forward-only", false, "measure only the forwarder's throughput")
	createOnly := flag.Bool("create-only", false, "measure only sequential create -> running, with the daemon's step breakdown")
	lsOnly := flag.Bool("ls-only", false, "measure only `pod ls`, with -ls-pods running pods and then with the same pods stopped")
	gatewayOnly := flag.Bool("gateway-only", false, "measure only the gateway against the host port of the same pod")
	hibernateOnly := flag.Bool("hibernate-only", false, "measure only the hibernate figures (hibernate.go)")
	snapshotOnly := flag.Bool("snapshot-only", false, "measure only the template snapshot figures (snapshot.go)")
	hibernated := flag.Int("hibernated", 0, "measure only how many pods the node holds with all but 10 of this many hibernated (hibcount.go)")
	hibWorkers := flag.Int("hibernated-workers", 3, "hibernated: pods created and hibernated at once")
	hibBudget := flag.Duration("hibernated-budget", 0, "hibernated: stop adding pods after this long (0: never)")
	lo := loadOpts{}
	loadOnly := flag.Bool("load-only", false, "measure only the load figures (load.go, docs/load.md)")
	flag.IntVar(&lo.clients, "load-clients", 20, "load: concurrent clients creating and deleting pods")
	flag.IntVar(&lo.rounds, "load-rounds", 3, "load: create+delete pairs per client (the 1-client baseline does clients x rounds)")
	flag.IntVar(&lo.maxIdle, "load-max-idle", 400, "load: at most this many idle pods")
	flag.IntVar(&lo.step, "load-step", 25, "load: idle pods added between measurements")
	flag.IntVar(&lo.memBudgetMB, "load-mem-budget", 16384, "load: stop adding idle pods once their memory cgroups hold this many MB")
	flag.IntVar(&lo.availFloorMB, "load-avail-floor", 4096, "load: stop adding idle pods once the host's MemAvailable is under this many MB")
	flag.DurationVar(&lo.window, "load-window", 10*time.Second, "load: CPU sampling window at each step")
	flag.BoolVar(&lo.churnOnly, "load-churn-only", false, "load: only the create/delete churn")
	flag.BoolVar(&lo.idleOnly, "load-idle-only", false, "load: only the idle pods")
	flag.StringVar(&lo.idleKind, "load-idle-kind", "service", "load: idle pods are plain (init only), service (busybox httpd, an http health check at the default interval, a host port) or service-nocheck (the same without the check)")
	flag.IntVar(&lo.profileAt, "load-profile-at", 100, "load: print where the idle pods' CPU goes at the first step with this many pods")
	flag.Float64Var(&lo.slowFactor, "load-slow-factor", 4, "load: stop adding idle pods once a step's create p50 is this multiple of the first step's (0: never)")
	flag.IntVar(&lo.taskShare, "load-task-share", 70, "load: stop adding idle pods once the host's tasks reach this percent of kernel.pid_max")
	warmOnly := flag.Bool("warm-only", false, "measure only the warm pool figures (warm.go)")
	memOnly := flag.Bool("memory-only", false, "measure only the memory per idle pod (memory.go)")
	var memVariants stringList
	flag.Var(&memVariants, "memory-variant", "memory: also run the pods' bundles with bare runsc as NAME:TOKEN... (init=PATH, env=K=V, args=A,B, --runsc-flag); repeatable")
	flag.Parse()
	var err error
	switch {
	case *loadOnly:
		err = runLoad(*bin, lo)
	case *gatewayOnly:
		err = runGateway(*bin)
	case *warmOnly:
		err = runWarm(*bin, *n)
	case *memOnly:
		err = runMemory(*bin, *n, memVariants)
	case *hibernated > 0:
		err = runHibernatedCount(*bin, *hibernated, *hibWorkers, *hibBudget)
	case *hibernateOnly:
		err = runHibernate(*bin, *n)
	case *snapshotOnly:
		err = runSnapshot(*bin, *n)
	case *forwardOnly:
		err = runForward(*bin)
	case *createOnly:
		err = runCreate(*bin, *n)
	case *lsOnly:
		err = runLs(*bin, *lsPods)
	default:
		err = run(*bin, *n, *lsPods)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchnode:", err)
		os.Exit(1)
	}
}

type node struct {
	dir, cfg, sock string
	cmd            *exec.Cmd
	client         *api.Client
}

// The main daemon, and the userspace-only one of the forwarder figures.
const (
	mainNet = "network: {pool: 10.213.0.0/16}\nports: {min: 45000, max: 45999, listenAddr: 127.0.0.1}\ngateway: {port: 44990}\nwarmPool: {max: 0}\n"
	userNet = "network: {pool: 10.214.0.0/16}\nports: {min: 46000, max: 46099, listenAddr: 127.0.0.1, kernelForward: false}\ngateway: {port: 44991}\nwarmPool: {max: 0}\n"
)

func start(bin, dir, netCfg string) (*node, error) {
	n := &node{dir: dir, cfg: filepath.Join(dir, "node.yaml"), sock: filepath.Join(dir, "node.sock")}
	cfg := fmt.Sprintf("dataRoot: %s/data\nrunscRoot: %s/runsc\nsocket: %s\ntemplatesDir: %s/templates\n%s", dir, dir, n.sock, dir, netCfg)
	if err := os.WriteFile(n.cfg, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	img, err := testimage.Busybox()
	if err != nil {
		return nil, err
	}
	layout := filepath.Join(dir, "layout")
	if err := testimage.WriteOCILayout(layout, map[string]v1.Image{ref: img}); err != nil {
		return nil, err
	}
	imp := exec.Command(bin, "image", "import", layout)
	imp.Env = append(os.Environ(), "PINACLE_DATA_ROOT="+dir+"/data")
	if out, err := imp.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("import: %v: %s", err, out)
	}
	log, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	n.cmd = exec.Command(bin, "serve", "--config", n.cfg)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	n.client = api.NewClient(n.sock)
	deadline := time.Now().Add(30 * time.Second)
	for n.client.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("daemon did not come up; see %s", log.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n, nil
}

func (n *node) stop(bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	list, _ := n.client.List(ctx)
	var g errgroup.Group
	g.SetLimit(8)
	for _, p := range list {
		g.Go(func() error { _ = n.client.Delete(ctx, p.ID); return nil })
	}
	_ = g.Wait()
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	_ = n.cmd.Wait()
	_ = exec.Command(bin, "cleanup", "--config", n.cfg).Run()
}

func (n *node) rssKB() int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}

func plain(name string) api.CreateRequest {
	return api.CreateRequest{Wait: true, Spec: podspec.Pod{Name: name, BaseImage: ref,
		Resources: podspec.Resources{Tier: "dev.small", MemoryMB: 256, StorageMB: 1024}}}
}

func httpd(name string) api.CreateRequest {
	r := plain(name)
	r.Spec.Network.Ports = []podspec.Port{{Name: "web", Internal: 8080}}
	r.Spec.Services = []podspec.Service{{Name: "web", Command: []string{"httpd", "-f", "-p", "8080", "-h", "/etc"}}}
	return r
}

// withNode runs fn against a fresh daemon in a temporary directory, then
// deletes its pods, stops it and removes the directory.
func withNode(bin string, fn func(nd *node) error) error {
	return withNodeSetup(bin, func(string) error { return nil }, fn)
}

// withNodeSetup is withNode with setup run on the daemon's directory
// before it starts (templates, say).
func withNodeSetup(bin string, setup func(dir string) error, fn func(nd *node) error) error {
	dir, err := os.MkdirTemp("", "pinacle-benchnode-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := setup(dir); err != nil {
		return err
	}
	nd, err := start(bin, dir, mainNet)
	if err != nil {
		return err
	}
	defer nd.stop(bin)
	return fn(nd)
}

func run(bin string, n, lsPods int) error {
	return withNode(bin, func(nd *node) error { return runAll(bin, nd, n, lsPods) })
}

func runAll(bin string, nd *node, n, lsPods int) error {
	ctx := context.Background()
	rss0 := nd.rssKB()

	// 1. Sequential creates to running (no services).
	seq, err := seqCreates(ctx, nd, n)
	if err != nil {
		return err
	}
	// 2. Ten at once.
	var conc []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			_, err := nd.client.Create(ctx, plain(fmt.Sprintf("conc%d", i)))
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			conc = append(conc, time.Since(t0))
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("concurrent create: %w", firstErr)
	}
	// 3. Create -> first HTTP answer through the host port.
	var firstHTTP []time.Duration
	hc := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < n/2; i++ {
		t0 := time.Now()
		p, err := nd.client.Create(ctx, httpd(fmt.Sprintf("web%d", i)))
		if err != nil {
			return fmt.Errorf("create httpd: %w", err)
		}
		url := p.Ports[0].URL + "/hostname"
		for {
			resp, err := hc.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Since(t0) > time.Minute {
				return fmt.Errorf("no HTTP answer from %s", url)
			}
			time.Sleep(2 * time.Millisecond)
		}
		firstHTTP = append(firstHTTP, time.Since(t0))
		if err := nd.client.Delete(ctx, p.ID); err != nil {
			return err
		}
	}
	// 4. pod exec true through the API, beside runsc exec alone.
	ep, err := nd.client.Create(ctx, plain("execbench"))
	if err != nil {
		return fmt.Errorf("create execbench: %w", err)
	}
	var viaAPI, raw []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		code, err := nd.client.ExecStream(ctx, ep.ID, api.ExecOptions{Args: []string{"true"}}, nil, io.Discard, io.Discard, nil)
		if err != nil || code != 0 {
			return fmt.Errorf("exec: %d %v", code, err)
		}
		viaAPI = append(viaAPI, time.Since(t0))
		t0 = time.Now()
		if out, err := exec.Command("runsc", "--root", nd.dir+"/runsc", "exec", ep.ID, "true").CombinedOutput(); err != nil {
			return fmt.Errorf("runsc exec: %v: %s", err, out)
		}
		raw = append(raw, time.Since(t0))
	}
	if err := nd.client.Delete(ctx, ep.ID); err != nil {
		return err
	}

	// 5. Forwarder throughput (forward.go).
	fwdLine, err := forwardBench(ctx, bin, nd)
	if err != nil {
		return err
	}

	// 6. Fill up to 50 running pods for RSS, then lsPods for `pod ls`.
	if err := fillPods(ctx, nd, 50); err != nil {
		return err
	}
	rss50 := nd.rssKB()
	if err := fillPods(ctx, nd, lsPods); err != nil {
		return err
	}
	fmt.Printf("node-bench: create -> running, 1 at a time:   p50 %s p95 %s (n=%d)\n", pct(seq, 50), pct(seq, 95), n)
	fmt.Printf("node-bench: create -> running, 10 concurrent: p50 %s p95 %s\n", pct(conc, 50), pct(conc, 95))
	fmt.Printf("node-bench: create -> first HTTP via host port: p50 %s (n=%d)\n", pct(firstHTTP, 50), len(firstHTTP))
	fmt.Printf("node-bench: daemon RSS: %d MB with 0 pods, %d MB with 50 running pods\n", rss0/1024, rss50/1024)
	fmt.Printf("node-bench: pod exec true via API: p50 %s; runsc exec alone: p50 %s (n=%d)\n", pct(viaAPI, 50), pct(raw, 50), n)
	fmt.Println(fwdLine)
	return lsRunningThenStopped(ctx, bin, nd)
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[(len(s)-1)*p/100].Round(100 * time.Microsecond)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
