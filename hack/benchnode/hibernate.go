package main

// The hibernate figures (issue 13), each beside its baseline from the
// same run:
//   - hibernate time and checkpoint size, an idle httpd pod and one
//     holding 200 MB in memory;
//   - wake to first byte through the host port, p50, beside a bare
//     `runsc restore` of the same checkpoint to the first byte from the
//     pod's address, and beside a cold create of the same pod to the
//     first byte through its host port;
//   - host memory returned by hibernating 20 idle pods (MemAvailable
//     before and after, beside the sum of their memory cgroups);
//   - what a hibernated pod still costs (memory, disk), and the pod
//     count that implies with all but 10 hibernated.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/podspec"
)

func runHibernate(bin string, n int) error {
	return withNode(bin, func(nd *node) error {
		ctx := context.Background()
		if err := hibernateSizes(ctx, nd); err != nil {
			return err
		}
		if err := wakeFirstByte(ctx, nd, n); err != nil {
			return err
		}
		return memoryReturned(ctx, nd, 20)
	})
}

// holder is a pod whose sort holds about 200 MB of lines in memory: its
// input never ends, so it never lets them go.
func holder(name string) api.CreateRequest {
	r := httpd(name)
	r.Spec.Resources.MemoryMB = 1024
	r.Spec.Services = append(r.Spec.Services, podspec.Service{Name: "hold", Command: []string{"sh", "-c",
		`(head -c 50000000 /dev/urandom | od -An -tx1; sleep 100000000) | sort > /dev/null`}})
	return r
}

func hibernateSizes(ctx context.Context, nd *node) error {
	for _, req := range []api.CreateRequest{httpd("idle"), holder("hold200")} {
		p, err := nd.client.Create(ctx, req)
		if err != nil {
			return fmt.Errorf("create %s: %w", req.Spec.Name, err)
		}
		if req.Spec.Name == "hold200" {
			if err := waitFor(5*time.Minute, func() bool { return cgroupMemory(p.ID) >= 200<<20 }); err != nil {
				log, _ := os.ReadFile(filepath.Join(nd.dir, "data", "pods", p.ID, "run", "logs", "hold.log"))
				return fmt.Errorf("the 200 MB holder at %d MB: %w; its log: %s", cgroupMemory(p.ID)>>20, err, log)
			}
			time.Sleep(2 * time.Second) // od's last lines reach sort
		}
		mem := cgroupMemory(p.ID)
		t0 := time.Now()
		if _, err := nd.client.Hibernate(ctx, p.ID); err != nil {
			return err
		}
		took := time.Since(t0)
		size := dirSize(filepath.Join(nd.dir, "data", "pods", p.ID, "checkpoint"))
		fmt.Printf("hibernate-bench: %-8s sandbox memory %4d MB: hibernate %s, checkpoint %d MB (%.2fx the memory)\n",
			req.Spec.Name, mem>>20, took.Round(time.Millisecond), size>>20, float64(size)/float64(max(mem, 1)))
		if err := nd.client.Delete(ctx, p.ID); err != nil {
			return err
		}
	}
	return nil
}

// wakeFirstByte hibernates an httpd pod n times; each time it restores
// the same checkpoint with bare runsc and times the first byte from the
// pod's address, removes that sandbox, then times a connection through
// the host port, which wakes the pod through the node.
func wakeFirstByte(ctx context.Context, nd *node, n int) error {
	p, err := nd.client.Create(ctx, httpd("waker"))
	if err != nil {
		return err
	}
	url := p.Ports[0].URL + "/hostname"
	var viaNode, bare, cold []time.Duration
	for i := 0; i < n; i++ {
		if _, err := nd.client.Hibernate(ctx, p.ID); err != nil {
			return err
		}
		d, err := bareRestore(nd, p)
		if err != nil {
			return err
		}
		bare = append(bare, d)
		t0 := time.Now()
		if err := firstByte(url, time.Minute); err != nil {
			return fmt.Errorf("wake through the host port: %w", err)
		}
		viaNode = append(viaNode, time.Since(t0))
	}
	for i := 0; i < n/2; i++ {
		t0 := time.Now()
		q, err := nd.client.Create(ctx, httpd(fmt.Sprintf("cold%d", i)))
		if err != nil {
			return err
		}
		if err := firstByte(q.Ports[0].URL+"/hostname", time.Minute); err != nil {
			return err
		}
		cold = append(cold, time.Since(t0))
		if err := nd.client.Delete(ctx, q.ID); err != nil {
			return err
		}
	}
	wn, wb, wc := pct(viaNode, 50), pct(bare, 50), pct(cold, 50)
	fmt.Printf("hibernate-bench: wake -> first byte via host port: p50 %s; bare runsc restore -> first byte: p50 %s (%.2fx, target <= 1.3x); cold create -> first byte: p50 %s (%.2fx) (n=%d)\n",
		wn, wb, float64(wn)/float64(wb), wc, float64(wn)/float64(wc), n)
	return nd.client.Delete(ctx, p.ID)
}

// bareRestore restores the hibernated pod's checkpoint with runsc alone
// (after putting the address back, as any restore must), times the first
// byte from the pod's address, and removes the sandbox again.
func bareRestore(nd *node, p *api.Pod) (time.Duration, error) {
	return bareRestoreFrom(nd, p, filepath.Join(nd.dir, "data", "pods", p.ID, "checkpoint"))
}

// bareRestoreFrom is bareRestore of the checkpoint in image (a template
// snapshot's, restored into hibernated pod p's bundle and netns).
func bareRestoreFrom(nd *node, p *api.Pod, image string) (time.Duration, error) {
	var att struct {
		NetnsPath, Interface string
		IP, Gateway          string
		PrefixLen            int
	}
	b, err := os.ReadFile(filepath.Join(nd.dir, "data", "netns", "pods", p.ID+".json"))
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(b, &att); err != nil {
		return 0, err
	}
	ns := "--net=" + att.NetnsPath
	_ = exec.Command("nsenter", ns, "ip", "addr", "add", fmt.Sprintf("%s/%d", att.IP, att.PrefixLen), "dev", att.Interface).Run()
	_ = exec.Command("nsenter", ns, "ip", "route", "add", "default", "via", att.Gateway).Run()
	podDir := filepath.Join(nd.dir, "data", "pods", p.ID)
	root := nd.dir + "/runsc"
	t0 := time.Now()
	// The sandbox inherits runsc's stdio: a file, never a pipe (design.md).
	out, err := os.CreateTemp(nd.dir, "bare-restore-*.log")
	if err != nil {
		return 0, err
	}
	defer out.Close()
	cmd := exec.Command("runsc", "--root", root, "--platform=systrap", "--overlay2=none", "--network=sandbox", "restore", "--detach",
		"--bundle", filepath.Join(podDir, "bundle"), "--image-path", image, p.ID)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return 0, fmt.Errorf("bare runsc restore: %v: %s", err, b)
	}
	if err := firstByte("http://"+att.IP+":8080/hostname", time.Minute); err != nil {
		return 0, fmt.Errorf("bare restore: %w", err)
	}
	d := time.Since(t0)
	if out, err := exec.Command("runsc", "--root", root, "delete", "--force", p.ID).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("runsc delete: %v: %s", err, out)
	}
	return d, nil
}

// memoryReturned hibernates k idle pods and prints MemAvailable before
// and after beside their memory cgroups' sum; then what they still cost.
func memoryReturned(ctx context.Context, nd *node, k int) error {
	var ids []string
	for i := 0; i < k; i++ {
		p, err := nd.client.Create(ctx, httpd(fmt.Sprintf("mem%d", i)))
		if err != nil {
			return err
		}
		ids = append(ids, p.ID)
	}
	time.Sleep(3 * time.Second) // let the sandboxes settle before the figure
	var cg uint64
	for _, id := range ids {
		cg += cgroupMemory(id)
	}
	before := memAvailable()
	for _, id := range ids {
		if _, err := nd.client.Hibernate(ctx, id); err != nil {
			return err
		}
	}
	after := memAvailable()
	var disk int64
	for _, id := range ids {
		disk += dirSize(filepath.Join(nd.dir, "data", "pods", id))
	}
	fmt.Printf("hibernate-bench: hibernating %d idle pods: MemAvailable %d -> %d MB (+%d MB), their memory cgroups held %d MB (%.0f%% returned)\n",
		k, before>>20, after>>20, (int64(after)-int64(before))>>20, cg>>20, 100*float64(int64(after)-int64(before))/float64(max(cg, 1)))
	perDisk := disk / int64(k)
	var st syscall.Statfs_t
	_ = syscall.Statfs(nd.dir, &st)
	free := int64(st.Bavail) * st.Bsize
	running := cg / uint64(k)
	fmt.Printf("hibernate-bench: a hibernated pod keeps %d MB on disk (checkpoint, storage); free disk %d GB -> about %d hibernated pods, plus 10 running at %d MB each; memory is not the limit (extrapolated, not measured at that count)\n",
		perDisk>>20, free>>30, free/max(perDisk, 1), running>>20)
	return nil
}

func firstByte(url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: timeout}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			var b [1]byte
			_, err = resp.Body.Read(b[:])
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s: %v", url, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// cgroupMemory is the pod's memory cgroup usage (cgroup v1, then v2).
func cgroupMemory(id string) uint64 {
	for _, f := range []string{"/sys/fs/cgroup/memory/pinacle/" + id + "/memory.usage_in_bytes", "/sys/fs/cgroup/pinacle/" + id + "/memory.current"} {
		if b, err := os.ReadFile(f); err == nil {
			v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			return v
		}
	}
	return 0
}

func memAvailable() uint64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "MemAvailable:" {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v << 10
		}
	}
	return 0
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512 // allocated, not apparent: storage images are sparse
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
