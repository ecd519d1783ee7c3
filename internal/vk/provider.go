package vk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	vkerrdefs "github.com/virtual-kubelet/virtual-kubelet/errdefs"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// Node is what the provider needs of a pinacle node: its API (the
// daemon's socket client implements it).
type Node interface {
	api.Service
	ExecStream(ctx context.Context, idOrName string, opts api.ExecOptions, stdin io.Reader, stdout, stderr io.Writer, resize <-chan api.Size) (int, error)
}

// Provider is the virtual-kubelet provider: it runs the Kubernetes pods
// bound to its node as pinacle pods on that node. It holds no state of
// its own that a restart would lose: the pinacle pod of a Kubernetes pod
// is found by name (PinacleName), so a restarted provider adopts the pods
// the node kept running.
type Provider struct {
	node     Node
	kube     kubernetes.Interface
	pods     corev1listers.PodLister
	nodeName string
	hostIP   string
	log      *slog.Logger
	keep     bool

	mu     sync.Mutex
	known  map[types.NamespacedName]*corev1.Pod // as last given to Create/Update
	failed map[types.NamespacedName]string      // pods the node refused, with why
	// made: the pinacle pods (by name, so by UID) the node has been seen
	// to hold. Until then a missing pinacle pod is one still being created
	// (CreatePod remembers the pod before its create reaches the node),
	// not one gone.
	made   map[string]bool
	notify func(*corev1.Pod)
	last   map[types.NamespacedName]corev1.PodStatus // last status notified
	wake   chan struct{}                             // kicks the sync loop
}

// ProviderConfig configures a Provider.
type ProviderConfig struct {
	Node     Node
	Kube     kubernetes.Interface
	Pods     corev1listers.PodLister
	NodeName string
	HostIP   string // the node's address, in pod status and the ports annotation
	Log      *slog.Logger
	// KeepThroughOutage: see Config.KeepThroughOutage.
	KeepThroughOutage bool
}

// NewProvider returns a provider over cfg.Node.
func NewProvider(cfg ProviderConfig) *Provider {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Provider{node: cfg.Node, kube: cfg.Kube, pods: cfg.Pods, nodeName: cfg.NodeName, hostIP: cfg.HostIP,
		log: cfg.Log, keep: cfg.KeepThroughOutage, known: map[types.NamespacedName]*corev1.Pod{}, failed: map[types.NamespacedName]string{},
		made: map[string]bool{},
		last: map[types.NamespacedName]corev1.PodStatus{}, wake: make(chan struct{}, 1)}
}

func key(p *corev1.Pod) types.NamespacedName {
	return types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
}

// CreatePod creates the pinacle pod, or adopts the one of that name (a
// restarted provider, or a workspace a new pod takes over), waking it
// unless the pod asks to stay hibernated. It returns once the node has
// recorded the pod; the status follows through NotifyPods. A pod the node
// refuses as invalid is reported Failed with the node's message rather
// than retried.
func (p *Provider) CreatePod(ctx context.Context, kp *corev1.Pod) error {
	kp = kp.DeepCopy()
	p.remember(kp)
	if p.keep {
		p.keepThroughOutage(ctx, kp)
	}
	pp, err := p.node.Get(ctx, PinacleName(kp))
	switch {
	case err == nil:
		p.log.Info("adopting pinacle pod", "pod", key(kp).String(), "pinacle", pp.Name, "state", pp.State)
		p.markMade(kp)
		return p.applyHibernate(ctx, kp, pp)
	case !errors.Is(err, errdefs.ErrNotFound):
		return err
	}
	req, err := CreateRequest(kp)
	if err == nil {
		_, err = p.node.Create(ctx, req)
	}
	if errors.Is(err, errdefs.ErrInvalidArgument) || errors.Is(err, errdefs.ErrNotFound) {
		p.mu.Lock()
		p.failed[key(kp)] = err.Error()
		p.mu.Unlock()
		p.log.Warn("pod refused", "pod", key(kp).String(), "err", err)
		p.kick()
		return nil
	}
	if err != nil {
		return fmt.Errorf("create pinacle pod for %s: %w", key(kp), err)
	}
	p.markMade(kp)
	p.kick()
	return nil
}

// UpdatePod applies what may change on a running pod: the hibernate
// annotation. Everything else of a pod's spec is immutable in Kubernetes.
func (p *Provider) UpdatePod(ctx context.Context, kp *corev1.Pod) error {
	kp = kp.DeepCopy()
	p.remember(kp)
	pp, err := p.node.Get(ctx, PinacleName(kp))
	if err != nil {
		return p.notFound(err, kp)
	}
	return p.applyHibernate(ctx, kp, pp)
}

// DeletePod deletes the pinacle pod, except a hibernated workspace: its
// checkpoint is what a recreated pod of the same workspace wakes from, so
// it stays (hibernated, holding disk only) until that pod deletes it
// awake, or someone deletes it with `pinacle-node pod delete`.
func (p *Provider) DeletePod(ctx context.Context, kp *corev1.Pod) error {
	name := PinacleName(kp)
	pp, err := p.node.Get(ctx, name)
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
	case err != nil:
		return err
	case kp.Annotations[AnnoWorkspace] != "" && pp.State == lifecycle.Hibernated:
		p.log.Info("keeping hibernated workspace", "pod", key(kp).String(), "pinacle", name)
	default:
		if err := p.node.Delete(ctx, name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("delete pinacle pod %s: %w", name, err)
		}
	}
	p.mu.Lock()
	delete(p.known, key(kp))
	delete(p.failed, key(kp))
	delete(p.made, name)
	cb := p.notify
	p.mu.Unlock()
	if cb != nil {
		done := kp.DeepCopy()
		done.Status = PodStatus(kp, nil, p.hostIP)
		done.Status.Phase, done.Status.Reason, done.Status.Message = corev1.PodSucceeded, "Deleted", "the pinacle pod was deleted"
		cb(done)
	}
	return nil
}

// GetPod returns the pod as last created or updated, with its status; a
// pod this provider has not seen since it started but whose pinacle pod
// exists is taken from the informer (the adopted case).
func (p *Provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	k := types.NamespacedName{Namespace: namespace, Name: name}
	p.mu.Lock()
	kp := p.known[k]
	p.mu.Unlock()
	if kp == nil {
		lp, err := p.pods.Pods(namespace).Get(name)
		if err != nil {
			return nil, vkerrdefs.NotFoundf("pod %s", k)
		}
		kp = lp
	}
	st, err := p.status(ctx, kp)
	if err != nil {
		// Not made yet (or its create failed): virtual-kubelet then calls
		// CreatePod again rather than UpdatePod.
		return nil, p.notFound(err, kp)
	}
	out := kp.DeepCopy()
	out.Status = st
	return out, nil
}

// GetPodStatus is the pod's status from its pinacle pod.
func (p *Provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	kp, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &kp.Status, nil
}

// GetPods lists the Kubernetes pods of this node that have a pinacle pod.
// Pinacle pods without a Kubernetes pod are not listed: reconcile deletes
// them, once the informer has synced.
func (p *Provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	pps, err := p.node.List(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*api.Pod{}
	for _, pp := range pps {
		byName[pp.Name] = pp
	}
	var out []*corev1.Pod
	for _, kp := range p.nodePods() {
		if pp, ok := byName[PinacleName(kp)]; ok {
			c := kp.DeepCopy()
			c.Status = PodStatus(kp, pp, p.hostIP)
			out = append(out, c)
		}
	}
	return out, nil
}

// NotifyPods registers the callback that receives status changes.
func (p *Provider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	p.notify = cb
	p.mu.Unlock()
}

func (p *Provider) remember(kp *corev1.Pod) {
	p.mu.Lock()
	p.known[key(kp)] = kp
	p.mu.Unlock()
}

func (p *Provider) markMade(kp *corev1.Pod) {
	p.mu.Lock()
	p.made[PinacleName(kp)] = true
	p.mu.Unlock()
}

func (p *Provider) notFound(err error, kp *corev1.Pod) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return vkerrdefs.NotFoundf("pinacle pod of %s", key(kp))
	}
	return err
}

// nodePods are the Kubernetes pods bound to this node, from the informer.
func (p *Provider) nodePods() []*corev1.Pod {
	all, err := p.pods.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*corev1.Pod
	for _, kp := range all {
		if kp.Spec.NodeName == p.nodeName {
			out = append(out, kp)
		}
	}
	return out
}

// status is kp's status: Failed with the node's reason for a refused
// pod, else from its pinacle pod; Failed ("gone") when the node no longer
// holds a pinacle pod it was seen to hold. A pinacle pod not made yet (its
// create in flight, or failed and to be retried) is ErrNotFound: there is
// no status to report, and reporting Failed would be final, since
// Kubernetes never takes a pod out of a terminal phase.
func (p *Provider) status(ctx context.Context, kp *corev1.Pod) (corev1.PodStatus, error) {
	p.mu.Lock()
	why, refused := p.failed[key(kp)]
	made := p.made[PinacleName(kp)]
	p.mu.Unlock()
	if refused {
		st := PodStatus(kp, nil, p.hostIP)
		st.Reason, st.Message = "Refused", why
		return st, nil
	}
	pp, err := p.node.Get(ctx, PinacleName(kp))
	switch {
	case errors.Is(err, errdefs.ErrNotFound) && made:
		return PodStatus(kp, nil, p.hostIP), nil
	case err != nil:
		return corev1.PodStatus{}, err
	}
	if !made {
		p.markMade(kp)
	}
	return PodStatus(kp, pp, p.hostIP), nil
}

// hibernateWanted says what the pod's annotation asks for.
func hibernateWanted(kp *corev1.Pod) bool { return kp.Annotations[AnnoHibernate] == "true" }

// applyHibernate brings the pinacle pod to the state the annotation asks
// for: hibernated, or running (waking a hibernated pod).
func (p *Provider) applyHibernate(ctx context.Context, kp *corev1.Pod, pp *api.Pod) error {
	want := hibernateWanted(kp)
	var err error
	switch {
	case want && pp.State == lifecycle.Running:
		p.log.Info("hibernating", "pod", key(kp).String(), "pinacle", pp.Name)
		_, err = p.node.Hibernate(ctx, pp.Name)
	case !want && pp.State == lifecycle.Hibernated:
		p.log.Info("waking", "pod", key(kp).String(), "pinacle", pp.Name)
		_, err = p.node.Wake(ctx, pp.Name)
	case !want && pp.State == lifecycle.Stopped:
		_, err = p.node.Start(ctx, pp.Name)
	}
	if err != nil {
		return fmt.Errorf("pod %s: %w", key(kp), err)
	}
	p.kick()
	return nil
}
