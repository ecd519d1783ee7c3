//go:build k8srig

package k8s

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/k8srig"
	"github.com/pinacle/pinacle-node/internal/vk"
)

// figures: create to Ready through the Kubernetes API (scheduler, vk,
// the node's API) beside create with wait through the node's own API, the
// same spec (vk's mapping of the same pod), on the same node, one at a
// time, in the same run. Fair to both: before every create the node's
// warm pool (docs/warmpool.md) holds a ready sandbox of the shape, so
// each create can claim one, and the order alternates by round; the
// figure says how many of each path's creates did claim one.
func figures(t *testing.T, r *k8srig.Rig) {
	n := r.Nodes[0]
	c := api.NewClient(n.Socket)
	defer c.Close()
	const rounds = 6
	var viaK8s, viaNode []time.Duration
	warmK8s, warmNode := 0, 0
	for i := range rounds {
		k8sFirst := i%2 == 0
		for _, viaKube := range []bool{k8sFirst, !k8sFirst} {
			waitWarm(t, c)
			var d time.Duration
			var warm bool
			if viaKube {
				d, warm = createViaKubernetes(t, r, c, n, fmt.Sprintf("fig-%d", i))
				viaK8s = append(viaK8s, d)
				warmK8s += b2i(warm)
			} else {
				d, warm = createViaNode(t, c, n, fmt.Sprintf("fig-%d", i))
				viaNode = append(viaNode, d)
				warmNode += b2i(warm)
			}
		}
	}
	k, d := median(viaK8s), median(viaNode)
	t.Logf("FIGURE create to running, p50 of %d, order alternating, a warm sandbox ready before each create (claimed: %d/%d through Kubernetes, %d/%d through the node): "+
		"through Kubernetes %v, through the node's API %v: ratio %.2fx (all: %v / %v)",
		rounds, warmK8s, rounds, warmNode, rounds, k.Round(time.Millisecond), d.Round(time.Millisecond), float64(k)/float64(d), viaK8s, viaNode)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// createViaKubernetes creates a pod pinned to n through the API server,
// times it to Ready, reports whether its pinacle pod claimed a warm
// sandbox, and deletes it.
func createViaKubernetes(t *testing.T, r *k8srig.Rig, c *api.Client, n *k8srig.Node, name string) (time.Duration, bool) {
	ctx := context.Background()
	kp := figurePod(name, n)
	start := time.Now()
	created, err := r.Kube.CoreV1().Pods("default").Create(ctx, kp, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPod(t, r, name, 2*time.Minute, "Ready", ready)
	d := time.Since(start)
	warm := claimedWarm(t, c, vk.PinacleName(created))
	if err := r.Kube.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, r, name)
	return d, warm
}

// createViaNode creates the same spec (vk's mapping of the same pod) on
// n through its own API with wait, times it, and deletes it.
func createViaNode(t *testing.T, c *api.Client, n *k8srig.Node, name string) (time.Duration, bool) {
	ctx := context.Background()
	kp := figurePod(name, n)
	kp.UID = types.UID("direct-" + name)
	req, err := vk.CreateRequest(kp)
	if err != nil {
		t.Fatal(err)
	}
	req.Spec.Name = "direct-" + name
	req.Wait = true
	start := time.Now()
	pp, err := c.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	warm := claimedWarm(t, c, pp.ID)
	if err := c.Delete(ctx, pp.ID); err != nil {
		t.Fatal(err)
	}
	return d, warm
}

func figurePod(name string, n *k8srig.Node) *corev1.Pod {
	kp := webPod(name, map[string]string{"kubernetes.io/hostname": n.Name})
	kp.Spec.TopologySpreadConstraints = nil
	kp.Labels = nil
	return kp
}

// waitWarm waits until the node's warm pool holds a ready sandbox of the
// rig's image (the pool refills for the shape of the last create).
func waitWarm(t *testing.T, c *api.Client) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := c.NodeStatus(context.Background())
		if err == nil {
			for _, e := range st.WarmPool.Entries {
				if e.Ready && strings.Contains(e.Image, "busybox") {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready warm sandbox of %s after 90s: %+v %v", busybox, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// claimedWarm reports whether the pinacle pod idOrName claimed a warm
// sandbox (its WarmClaimed event).
func claimedWarm(t *testing.T, c *api.Client, idOrName string) bool {
	t.Helper()
	warm := false
	err := c.Events(context.Background(), idOrName, 0, false, func(e api.Event) error {
		warm = warm || e.Reason == "WarmClaimed"
		return nil
	})
	if err != nil {
		t.Fatalf("events of %s: %v", idOrName, err)
	}
	return warm
}
