package main

// The warm pool figures (issue 14): create -> first HTTP answer through the
// host port when the create claims a warm sandbox, beside bare runsc
// create + start of the same bundle and `podman run -d` with runsc, in the
// same run; what the pool holds; memory per idle pod.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/testimage"
)

const warmNet = "network: {pool: 10.215.0.0/16}\nports: {min: 46100, max: 46199, listenAddr: 127.0.0.1}\ngateway: {port: 44992}\nwarmPool: {recent: 1, max: 1}\n"

func runWarm(bin string, n int) error {
	dir, err := os.MkdirTemp("", "pinacle-benchwarm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	nd, err := start(bin, dir, warmNet)
	if err != nil {
		return err
	}
	defer nd.stop(bin)
	ctx := context.Background()
	var claimed, cold, bare []time.Duration
	// The first create is cold and makes its shape the pool's.
	_, seed, err := createToHTTP(ctx, nd, "seed")
	if err != nil {
		return err
	}
	if err := nd.client.Delete(ctx, seed.ID); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := waitWarm(ctx, nd, 1); err != nil {
			return err
		}
		d, p, err := createToHTTP(ctx, nd, fmt.Sprintf("warm%d", i))
		if err != nil {
			return err
		}
		claimed = append(claimed, d)
		if err := nd.client.Delete(ctx, p.ID); err != nil {
			return err
		}
	}
	// Cold creates of the same pod: the pool is kept empty meanwhile by
	// giving each a shape of its own (one MB more memory).
	for i := 0; i < n/2+1; i++ {
		req := httpd(fmt.Sprintf("cold%d", i))
		req.Spec.Resources.MemoryMB += int64(i + 1)
		d, p, err := createReqToHTTP(ctx, nd, req)
		if err != nil {
			return err
		}
		cold = append(cold, d)
		if err := nd.client.Delete(ctx, p.ID); err != nil {
			return err
		}
	}
	// Bare runsc create + start of a pod's own bundle (hibernated, so its
	// network and rootfs stay while runsc alone runs the bundle).
	hp, err := nd.client.Create(ctx, httpd("barebundle"))
	if err != nil {
		return err
	}
	if _, err := nd.client.Hibernate(ctx, hp.ID); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		d, err := bareCreate(nd, hp)
		if err != nil {
			return err
		}
		bare = append(bare, d)
	}
	if err := nd.client.Delete(ctx, hp.ID); err != nil {
		return err
	}
	pod, err := podmanFirstHTTP(dir, n)
	if err != nil {
		fmt.Printf("warm-bench: podman baseline unavailable: %v\n", err)
	}
	wc, wb, wd := pct(claimed, 50), pct(bare, 50), pct(cold, 50)
	fmt.Printf("warm-bench: create -> first HTTP via host port, claiming a warm sandbox: p50 %s (n=%d)\n", wc, n)
	fmt.Printf("warm-bench:   vs bare runsc create+start of the same bundle -> first HTTP: p50 %s: %.2fx (target <= 0.7x)\n", wb, ratio(wc, wb))
	if len(pod) > 0 {
		fmt.Printf("warm-bench:   vs podman run -d (runsc) -> first HTTP via host port: p50 %s: %.2fx (target <= 0.3x)\n", pct(pod, 50), ratio(wc, pct(pod, 50)))
	}
	fmt.Printf("warm-bench:   vs a cold create on the same node: p50 %s: %.2fx\n", wd, ratio(wc, wd))
	return poolHeld(ctx, nd)
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// waitWarm waits for k ready entries.
func waitWarm(ctx context.Context, nd *node, k int) error {
	return waitFor(2*time.Minute, func() bool {
		st, err := nd.client.NodeStatus(ctx)
		if err != nil {
			return false
		}
		ready := 0
		for _, e := range st.WarmPool.Entries {
			if e.Ready {
				ready++
			}
		}
		return ready >= k
	})
}

// poolHeld prints what the warm pool holds of the host once full.
func poolHeld(ctx context.Context, nd *node) error {
	if err := waitWarm(ctx, nd, 1); err != nil {
		return err
	}
	time.Sleep(3 * time.Second) // let the booted sandbox settle
	st, err := nd.client.NodeStatus(ctx)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(st.Warm)
	fmt.Printf("warm-bench: the pool (%d entries) holds %.1f MB of memory (memory cgroups) and %.1f MB of disk; it reserves %s of the node's capacity\n",
		len(st.WarmPool.Entries), float64(st.WarmPool.MemoryBytes)/1e6, float64(st.WarmPool.DiskBytes)/1e6, b)
	return nil
}

func createToHTTP(ctx context.Context, nd *node, name string) (time.Duration, *api.Pod, error) {
	return createReqToHTTP(ctx, nd, httpd(name))
}

func createReqToHTTP(ctx context.Context, nd *node, req api.CreateRequest) (time.Duration, *api.Pod, error) {
	t0 := time.Now()
	p, err := nd.client.Create(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	if err := firstByte(p.Ports[0].URL+"/hostname", time.Minute); err != nil {
		return 0, nil, err
	}
	return time.Since(t0), p, nil
}

// bareCreate runs the hibernated pod's bundle with runsc alone (create +
// start in one `run --detach`), times the first HTTP answer from the
// pod's address, and removes the sandbox.
func bareCreate(nd *node, p *api.Pod) (time.Duration, error) {
	ip, err := readdAddress(nd, p)
	if err != nil {
		return 0, err
	}
	podDir := filepath.Join(nd.dir, "data", "pods", p.ID)
	root := nd.dir + "/runsc"
	out, err := os.CreateTemp(nd.dir, "bare-create-*.log")
	if err != nil {
		return 0, err
	}
	defer out.Close()
	t0 := time.Now()
	cmd := exec.Command("runsc", "--root", root, "--platform=systrap", "--overlay2=none", "--network=sandbox", "run", "--detach",
		"--bundle", filepath.Join(podDir, "bundle"), p.ID)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return 0, fmt.Errorf("bare runsc run: %v: %s", err, b)
	}
	if err := firstByte("http://"+ip+":8080/hostname", time.Minute); err != nil {
		return 0, fmt.Errorf("bare create: %w", err)
	}
	d := time.Since(t0)
	if b, err := exec.Command("runsc", "--root", root, "delete", "--force", p.ID).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("runsc delete: %v: %s", err, b)
	}
	return d, nil
}

// readdAddress puts the pod's address back on its interface (runsc took
// it), as bareRestore does, and returns it.
func readdAddress(nd *node, p *api.Pod) (string, error) {
	var att struct {
		NetnsPath, Interface string
		IP, Gateway          string
		PrefixLen            int
	}
	b, err := os.ReadFile(filepath.Join(nd.dir, "data", "netns", "pods", p.ID+".json"))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, &att); err != nil {
		return "", err
	}
	ns := "--net=" + att.NetnsPath
	_ = exec.Command("nsenter", ns, "ip", "addr", "add", fmt.Sprintf("%s/%d", att.IP, att.PrefixLen), "dev", att.Interface).Run()
	_ = exec.Command("nsenter", ns, "ip", "route", "add", "default", "via", att.Gateway).Run()
	return att.IP, nil
}

// podmanFirstHTTP times `podman run -d` with runsc of the same busybox
// image running httpd, to the first HTTP answer through its host port.
// Podman is Debian's (hack/bench.sh installs it for this figure only).
func podmanFirstHTTP(dir string, n int) ([]time.Duration, error) {
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, err
	}
	runsc, err := exec.LookPath("runsc")
	if err != nil {
		return nil, err
	}
	img, err := testimage.Busybox()
	if err != nil {
		return nil, err
	}
	layout := filepath.Join(dir, "podman-layout")
	// skopeo's oci: transport finds a bare tag, not a full reference.
	if err := testimage.WriteOCILayout(layout, map[string]v1.Image{"latest": img}); err != nil {
		return nil, err
	}
	pm := func(args ...string) ([]byte, error) {
		return exec.Command("podman", append([]string{"--runtime", runsc, "--cgroup-manager", "cgroupfs"}, args...)...).CombinedOutput()
	}
	if out, err := exec.Command("skopeo", "copy", "oci:"+layout+":latest", "containers-storage:"+ref).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("skopeo copy into podman's storage: %v: %s", err, out)
	}
	defer pm("rmi", "-f", ref)
	var ds []time.Duration
	for i := 0; i < n; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("pinacle-bench-%d", i)
		t0 := time.Now()
		out, err := pm("run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), ref, "httpd", "-f", "-p", "8080", "-h", "/etc")
		if err != nil {
			return nil, fmt.Errorf("podman run: %v: %s", err, out)
		}
		err = firstByte(fmt.Sprintf("http://127.0.0.1:%d/hostname", port), time.Minute)
		ds = append(ds, time.Since(t0))
		if rout, rerr := pm("rm", "-f", "-t", "0", name); rerr != nil {
			return nil, fmt.Errorf("podman rm: %v: %s", rerr, rout)
		}
		if err != nil {
			return nil, fmt.Errorf("podman: %w", err)
		}
	}
	return ds, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
