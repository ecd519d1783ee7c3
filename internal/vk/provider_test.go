package vk

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	corev1listers "k8s.io/client-go/listers/core/v1"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// slowCreateNode is a node whose Create is held until the test lets it
// go: the window a real node's create leaves between the provider
// remembering a pod and the node recording it, which the real daemon
// does not open on demand. Only the calls these tests make are
// implemented (the embedded nil Node panics on any other).
type slowCreateNode struct {
	Node
	started, release chan struct{}

	mu   sync.Mutex
	pods map[string]*api.Pod
}

func newSlowCreateNode() *slowCreateNode {
	return &slowCreateNode{started: make(chan struct{}), release: make(chan struct{}), pods: map[string]*api.Pod{}}
}

func (n *slowCreateNode) Create(ctx context.Context, req api.CreateRequest) (*api.Pod, error) {
	close(n.started)
	select {
	case <-n.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	pp := &api.Pod{ID: "p1", Name: req.Spec.Name, State: lifecycle.Pending, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	n.pods[pp.Name] = pp
	return pp, nil
}

func (n *slowCreateNode) Get(_ context.Context, name string) (*api.Pod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if pp, ok := n.pods[name]; ok {
		c := *pp
		return &c, nil
	}
	return nil, fmt.Errorf("pod %s: %w", name, errdefs.ErrNotFound)
}

func (n *slowCreateNode) List(context.Context) ([]*api.Pod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*api.Pod
	for _, pp := range n.pods {
		c := *pp
		out = append(out, &c)
	}
	return out, nil
}

func (n *slowCreateNode) Delete(_ context.Context, name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pods, name)
	return nil
}

// providerOn returns a provider over node with kp bound to its node in
// the informer, and the statuses it notifies.
func providerOn(t *testing.T, node Node, kp *corev1.Pod) (*Provider, func() []corev1.PodStatus) {
	t.Helper()
	kp.Spec.NodeName = "n1"
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	if err := idx.Add(kp); err != nil {
		t.Fatal(err)
	}
	p := NewProvider(ProviderConfig{Node: node, Pods: corev1listers.NewPodLister(idx), NodeName: "n1", HostIP: "127.0.1.1"})
	var mu sync.Mutex
	var got []corev1.PodStatus
	p.NotifyPods(context.Background(), func(kp *corev1.Pod) {
		mu.Lock()
		got = append(got, kp.Status)
		mu.Unlock()
	})
	return p, func() []corev1.PodStatus {
		mu.Lock()
		defer mu.Unlock()
		return append([]corev1.PodStatus(nil), got...)
	}
}

// The rig's first run: a sync while a pod's create was still on its way
// to the node reported the pod Failed ("the pinacle pod is gone"), which
// Kubernetes never takes back.
func TestSyncDuringCreateDoesNotFailThePod(t *testing.T) {
	ctx := context.Background()
	node := newSlowCreateNode()
	kp := webPod()
	p, statuses := providerOn(t, node, kp)
	created := make(chan error, 1)
	go func() { created <- p.CreatePod(ctx, kp) }()
	<-node.started
	if err := p.syncAll(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got, err := p.GetPod(ctx, kp.Namespace, kp.Name); err == nil {
		t.Errorf("GetPod during the create = phase %s, want not found (so a failed create is retried)", got.Status.Phase)
	}
	close(node.release)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if err := p.syncAll(ctx, true); err != nil {
		t.Fatal(err)
	}
	got := statuses()
	for _, st := range got {
		if st.Phase == corev1.PodFailed {
			t.Fatalf("status notified during the create: %s %s: %s", st.Phase, st.Reason, st.Message)
		}
	}
	if len(got) == 0 || got[len(got)-1].Phase != corev1.PodPending {
		t.Fatalf("statuses after the create = %+v, want Pending last", got)
	}
}

// A pinacle pod the node held and no longer holds is reported gone.
func TestPinaclePodGoneAfterCreate(t *testing.T) {
	ctx := context.Background()
	node := newSlowCreateNode()
	close(node.release)
	kp := webPod()
	p, statuses := providerOn(t, node, kp)
	if err := p.CreatePod(ctx, kp); err != nil {
		t.Fatal(err)
	}
	if err := node.Delete(ctx, PinacleName(kp)); err != nil {
		t.Fatal(err)
	}
	if err := p.syncAll(ctx, false); err != nil {
		t.Fatal(err)
	}
	got := statuses()
	if len(got) == 0 || got[len(got)-1].Phase != corev1.PodFailed || got[len(got)-1].Reason != "NotFound" {
		t.Fatalf("statuses = %+v, want Failed NotFound last", got)
	}
}
