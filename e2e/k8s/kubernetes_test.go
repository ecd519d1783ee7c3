//go:build k8srig

package k8s

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/k8srig"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/vk"
)

// TestKubernetesRig runs the rig's whole story in order, on one control
// plane and three nodes: scheduling and spread, a forwarded port, figures,
// a node's processes killed and restarted, a node down past the outage
// toleration, hibernate and wake through the annotation, delete all.
func TestKubernetesRig(t *testing.T) {
	r := startRig(t)
	ctx := context.Background()
	pods := spread(t, r)

	t.Run("forwarded port", func(t *testing.T) {
		p, _ := r.Kube.CoreV1().Pods("default").Get(ctx, pods[0], metav1.GetOptions{})
		pa := ports(t, p)
		if len(pa) != 1 || pa[0].ContainerPort != 8080 || !strings.HasPrefix(pa[0].Address, p.Status.HostIP+":") {
			t.Fatalf("ports annotation %+v (host IP %s)", pa, p.Status.HostIP)
		}
		body, err := get("http://" + pa[0].Address + "/index.html")
		if err != nil || !strings.HasPrefix(body, "hello from") {
			t.Fatalf("GET through the forwarded port: %q %v", body, err)
		}
	})
	t.Run("each node in its own network namespace", func(t *testing.T) { ownNetns(t, r, pods) })
	t.Run("logs through the API server", func(t *testing.T) {
		b, err := r.Kube.CoreV1().Pods("default").GetLogs(pods[1], &corev1.PodLogOptions{Container: "web"}).DoRaw(ctx)
		if err != nil || !strings.Contains(string(b), "serving ") {
			t.Fatalf("logs of %s through the API server (to the node's kubelet API in its namespace): %q %v", pods[1], b, err)
		}
	})
	t.Run("figures", func(t *testing.T) { figures(t, r) })
	t.Run("restart recovers the same sandboxes", func(t *testing.T) { restart(t, r, pods) })
	t.Run("outage past the toleration evicts nothing", func(t *testing.T) { outage(t, r, pods) })
	t.Run("hibernate and wake through the annotation", func(t *testing.T) { hibernate(t, r, pods[0]) })
	t.Run("delete everything", func(t *testing.T) {
		for _, name := range pods {
			if err := r.Kube.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range pods {
			waitGone(t, r, name)
		}
		for _, n := range r.Nodes {
			left, err := api.NewClient(n.Socket).List(ctx)
			if err != nil || len(left) != 0 {
				t.Errorf("%s: pinacle pods left: %d %v", n.Name, len(left), err)
			}
		}
	})
}

// memAvailable is the host's MemAvailable in bytes.
func memAvailable(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}

func waitGone(t *testing.T, r *k8srig.Rig, name string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := r.Kube.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not gone after 90s\n%s", name, r.Logs(25))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// spread creates six pods with CPU and memory requests and checks the
// scheduler put two on each node, each Ready.
func spread(t *testing.T, r *k8srig.Rig) []string {
	ctx := context.Background()
	availBefore := memAvailable(t)
	var names []string
	for i := range 6 {
		name := fmt.Sprintf("web-%d", i)
		if _, err := r.Kube.CoreV1().Pods("default").Create(ctx, webPod(name, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	perNode := map[string]int{}
	for _, name := range names {
		p := waitPod(t, r, name, 3*time.Minute, "Ready", ready)
		perNode[p.Spec.NodeName]++
		if p.Annotations[vk.AnnoPorts] == "" {
			p = waitPod(t, r, name, 30*time.Second, "ports annotation", func(p *corev1.Pod) bool { return p.Annotations[vk.AnnoPorts] != "" })
		}
		for _, tl := range p.Spec.Tolerations {
			if (tl.Key == corev1.TaintNodeUnreachable || tl.Key == corev1.TaintNodeNotReady) && tl.TolerationSeconds != nil {
				t.Errorf("pod %s: outage toleration still bounded: %+v", name, tl)
			}
		}
	}
	for _, n := range r.Nodes {
		if perNode[n.Name] != 2 {
			t.Errorf("node %s got %d pods, want 2 (spread: %v)", n.Name, perNode[n.Name], perNode)
		}
	}
	t.Logf("six pods spread over the nodes: %v", perNode)
	used := availBefore - memAvailable(t)
	t.Logf("FIGURE the rig holds %d nodes and %d pods (their requests: 500m CPU, 256 MiB each; the nodes offer 2 CPUs, 8 GiB, 20 pods each): "+
		"host MemAvailable fell %d MiB for the six pods, %d MiB a pod", len(r.Nodes), len(names), used>>20, used/int64(len(names))>>20)
	return names
}

// restart SIGKILLs one node's daemon and vk, starts them again, and
// checks its pods are the same pinacle pods on the same sandboxes.
func restart(t *testing.T, r *k8srig.Rig, pods []string) {
	ctx := context.Background()
	n := r.Nodes[1]
	ids := podIDs(t, r, n)
	before := sandboxes(t, n, ids)
	if len(ids) != 2 || len(before) != 2 {
		t.Fatalf("%s: want 2 pods, 2 sandboxes; have %v, %v", n.Name, ids, before)
	}
	n.Kill()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	for name := range ids {
		waitPod(t, r, name, time.Minute, "Ready after restart", ready)
	}
	// Let vk's reconcile run a few rounds: it must neither create nor delete.
	time.Sleep(5 * time.Second)
	if after := podIDs(t, r, n); fmt.Sprint(after) != fmt.Sprint(ids) {
		t.Errorf("pinacle pods changed across restart: %v -> %v", ids, after)
	}
	if after := sandboxes(t, n, ids); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("sandboxes changed across restart: %v -> %v", before, after)
	}
	left, _ := api.NewClient(n.Socket).List(ctx)
	if len(left) != 2 {
		t.Errorf("%s: %d pinacle pods after restart, want 2", n.Name, len(left))
	}
}

// podIDs maps each Kubernetes pod on n to its pinacle pod ID.
func podIDs(t *testing.T, r *k8srig.Rig, n *k8srig.Node) map[string]string {
	pl, err := r.Kube.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pl.Items {
		if p.Spec.NodeName == n.Name {
			out[p.Name] = p.Annotations[vk.AnnoPodID]
		}
	}
	return out
}

// outage keeps one node's processes down past the controller manager's
// grace period and the API server's default outage toleration (30 s in
// the rig), checks the node went unready and no pod was evicted, then
// brings it back and finds the same pods and sandboxes.
func outage(t *testing.T, r *k8srig.Rig, _ []string) {
	ctx := context.Background()
	n := r.Nodes[2]
	ids := podIDs(t, r, n)
	before := sandboxes(t, n, ids)
	n.Kill()
	down := time.Now()
	deadline := down.Add(20*time.Second + 30*time.Second + 30*time.Second)
	sawUnready := false
	for time.Now().Before(deadline) {
		kn, err := r.Kube.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err == nil {
			for _, c := range kn.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
					sawUnready = true
				}
			}
		}
		time.Sleep(time.Second)
	}
	if !sawUnready {
		t.Errorf("node %s never became unready while down", n.Name)
	}
	for name := range ids {
		p, err := r.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil || p.DeletionTimestamp != nil {
			t.Errorf("pod %s evicted after %s down: %v", name, time.Since(down).Round(time.Second), err)
		}
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	for name := range ids {
		waitPod(t, r, name, time.Minute, "Ready after the outage", ready)
	}
	if after := sandboxes(t, n, ids); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("sandboxes changed across the outage: %v -> %v", before, after)
	}
}

func hibernate(t *testing.T, r *k8srig.Rig, name string) {
	ctx := context.Background()
	p, _ := r.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	n := nodeOf(r, p.Spec.NodeName)
	c := api.NewClient(n.Socket)
	defer c.Close()
	pinacle := vk.PinacleName(p)
	setHibernate(t, r, name, true)
	waitPod(t, r, name, 2*time.Minute, "hibernated", func(p *corev1.Pod) bool {
		pp, err := c.Get(ctx, pinacle)
		return err == nil && pp.State == lifecycle.Hibernated && p.Status.Reason == vk.ReasonHibernated && !ready(p)
	})
	setHibernate(t, r, name, false)
	p = waitPod(t, r, name, 2*time.Minute, "woken and Ready", ready)
	if pp, err := c.Get(ctx, pinacle); err != nil || pp.State != lifecycle.Running {
		t.Fatalf("pinacle pod after wake: %+v %v", pp, err)
	}
	pa := ports(t, p)
	if body, err := get("http://" + pa[0].Address + "/index.html"); err != nil || !strings.HasPrefix(body, "hello from") {
		t.Fatalf("GET after wake: %q %v", body, err)
	}
}

// ownNetns checks each node's pods are wired inside the node's own
// network namespace: their bridges are there and not on the host, and
// their forwarded ports are on the node's address there.
func ownNetns(t *testing.T, r *k8srig.Rig, pods []string) {
	ctx := context.Background()
	hostLinks := links(t, exec.CommandContext(ctx, "ip", "-o", "link", "show"))
	for _, n := range r.Nodes {
		inNode := links(t, n.Command(ctx, "ip", "-o", "link", "show"))
		bridges := 0
		for l := range inNode {
			if strings.HasPrefix(l, "pn") {
				bridges++
				if hostLinks[l] {
					t.Errorf("%s: bridge %s is on the host too", n.Name, l)
				}
			}
		}
		if bridges < 2 {
			t.Errorf("%s: %d pod bridges in its namespace %s, want at least its 2 pods': %v", n.Name, bridges, n.Netns, inNode)
		}
	}
	for _, name := range pods {
		p, err := r.Kube.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := nodeOf(r, p.Spec.NodeName)
		if pa := ports(t, p); len(pa) != 1 || !strings.HasPrefix(pa[0].Address, n.Addr+":") || p.Status.HostIP != n.Addr {
			t.Errorf("pod %s on %s: ports %+v, host IP %s; want the node's namespace address %s", name, n.Name, pa, p.Status.HostIP, n.Addr)
		}
	}
}

// links runs `ip -o link show` and returns the link names.
func links(t *testing.T, cmd *exec.Cmd) map[string]bool {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 {
			m[strings.SplitN(strings.TrimSpace(f[1]), "@", 2)[0]] = true
		}
	}
	return m
}
