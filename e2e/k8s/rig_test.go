//go:build k8srig

package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/k8srig"
	"github.com/pinacle/pinacle-node/internal/leakcheck"
	"github.com/pinacle/pinacle-node/internal/testenv"
	"github.com/pinacle/pinacle-node/internal/testimage"
	"github.com/pinacle/pinacle-node/internal/vk"
)

const busybox = "pinacle.local/busybox:latest"

func rigBin() string {
	if d := os.Getenv("PINACLE_K8S_RIG_BIN"); d != "" {
		return d
	}
	return "/var/lib/pinacle-k8s-rig/bin"
}

// startRig brings up the control plane and three nodes, and registers the
// teardown: delete every pod through Kubernetes, stop the rig, clean
// every node, and the leak check.
func startRig(t *testing.T) *k8srig.Rig {
	t.Helper()
	testenv.Require(t, skipWhy == "", "%s", skipWhy)
	for _, b := range k8srig.Binaries {
		testenv.RequireFile(t, filepath.Join(rigBin(), b), "build it once with hack/k8srig/build-k8s.sh (make k8s-rig)")
	}
	dir := filepath.Join(workDir, "rig")
	// k8srig: the nodes' namespaces and veths (k8srig-N, k8srigNh).
	probe := leakcheck.Probe{Filter: []string{"pinacle", "PINACLE", "pn", k8srig.NetnsPrefix, dir}, Procs: []string{dir}}
	ctx := context.Background()
	before := probe.Take(ctx)
	if err := before.Err(); err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(workDir, "layout")
	if err := testimage.WriteOCILayout(layout, map[string]v1.Image{busybox: img}); err != nil {
		t.Fatal(err)
	}
	r, err := k8srig.Start(ctx, k8srig.Options{Dir: dir, BinDir: rigBin(), NodeBin: nodeBin, VKBin: vkBin, Nodes: 3,
		PortBase: 26400, OutageSeconds: 30, ImageLayout: layout, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		teardown(t, r)
		if err := probe.Check(ctx, before, 15*time.Second); err != nil {
			t.Errorf("leak check: %v", err)
		} else {
			t.Log("leak check passed on every node")
		}
	})
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func teardown(t *testing.T, r *k8srig.Rig) {
	ctx := context.Background()
	pods, _ := r.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		_ = r.Kube.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{})
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		pods, err := r.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if t.Failed() {
		t.Logf("rig logs:\n%s", r.Logs(30))
	}
	for _, n := range r.Nodes {
		c := api.NewClient(n.Socket)
		if left, err := c.List(ctx); err == nil {
			for _, p := range left {
				t.Errorf("%s: pinacle pod %s (%s) left after its Kubernetes pod was deleted", n.Name, p.Name, p.State)
				_ = c.Delete(ctx, p.ID)
			}
		}
		c.Close()
	}
	r.Stop(ctx)
	for _, n := range r.Nodes {
		out, _ := exec.Command("runsc", "--root", n.RunscRoot, "list", "-quiet").Output()
		if ids := strings.TrimSpace(string(out)); ids != "" {
			t.Errorf("%s: runsc containers left: %s", n.Name, ids)
		}
		if err := n.Clean(ctx); err != nil {
			t.Error(err)
		}
	}
}

// webPod is a pod for the rig: busybox httpd on 8080 with a readiness
// probe, CPU and memory requests, the pinacle toleration.
func webPod(name string, nodeSelector map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "rig-web"}},
		Spec: corev1.PodSpec{
			NodeSelector: nodeSelector,
			Tolerations:  []corev1.Toleration{{Key: vk.TaintKey, Operator: corev1.TolerationOpEqual, Value: vk.RuntimeGVisor, Effect: corev1.TaintEffectNoSchedule}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "rig-web"}}}},
			Containers: []corev1.Container{{
				Name: "web", Image: busybox,
				Command: []string{"sh", "-c", "echo serving $(hostname) on 8080; mkdir -p /srv && echo hello from $(hostname) > /srv/index.html && exec httpd -f -p 8080 -h /srv"},
				Ports:   []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1, TimeoutSeconds: 1},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")}},
			}},
		},
	}
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue && p.Status.Phase == corev1.PodRunning
		}
	}
	return false
}

func waitPod(t *testing.T, r *k8srig.Rig, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := r.Kube.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			state := "not found"
			if p != nil {
				b, _ := json.Marshal(p.Status)
				state = string(b)
			}
			t.Fatalf("pod %s: timed out after %s waiting for %s; status %s\n%s", name, timeout, what, state, r.Logs(25))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nodeOf(r *k8srig.Rig, name string) *k8srig.Node {
	for _, n := range r.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func ports(t *testing.T, p *corev1.Pod) []vk.PortAnnotation {
	t.Helper()
	var out []vk.PortAnnotation
	if err := json.Unmarshal([]byte(p.Annotations[vk.AnnoPorts]), &out); err != nil {
		t.Fatalf("pod %s: %s annotation %q: %v", p.Name, vk.AnnoPorts, p.Annotations[vk.AnnoPorts], err)
	}
	return out
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// sandboxes lists n's runsc sandboxes of the pinacle pods ids (Kubernetes
// pod -> pinacle pod ID) as ID/PID/status. The node's warm sandboxes
// (docs/warmpool.md) are left out: they are not pods, and a crashed
// node removes them and boots new ones rather than adopting them.
func sandboxes(t *testing.T, n *k8srig.Node, ids map[string]string) []string {
	t.Helper()
	pods := map[string]bool{}
	for _, id := range ids {
		pods[id] = true
	}
	out, err := exec.Command("runsc", "--root", n.RunscRoot, "list", "-format", "json").Output()
	if err != nil {
		t.Fatalf("%s: runsc list: %v", n.Name, err)
	}
	var cs []struct {
		ID     string `json:"id"`
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &cs); err != nil && strings.TrimSpace(string(out)) != "null" {
		t.Fatalf("%s: runsc list: %v: %s", n.Name, err, out)
	}
	var got []string
	for _, c := range cs {
		if pods[c.ID] {
			got = append(got, fmt.Sprintf("%s/%d/%s", c.ID, c.Pid, c.Status))
		}
	}
	sort.Strings(got)
	return got
}

func setHibernate(t *testing.T, r *k8srig.Rig, name string, on bool) {
	t.Helper()
	var v any
	if on {
		v = "true"
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{vk.AnnoHibernate: v}}})
	if _, err := r.Kube.CoreV1().Pods("default").Patch(context.Background(), name, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
