package vk

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// resyncEvery bounds how stale a status can get when no event arrives
// (a service's health changes without a lifecycle event).
const resyncEvery = 2 * time.Second

func (p *Provider) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run keeps Kubernetes' view in step with the node until ctx ends: each
// node event, and every resyncEvery, it pushes changed pod statuses,
// publishes forwarded ports, applies the hibernate annotation and, when
// reconcile is on (the informer has synced), deletes pinacle pods whose
// Kubernetes pod is gone.
func (p *Provider) Run(ctx context.Context, synced <-chan struct{}) {
	go p.followEvents(ctx)
	t := time.NewTicker(resyncEvery)
	defer t.Stop()
	reconcile := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-synced:
			synced, reconcile = nil, true
		case <-t.C:
		case <-p.wake:
		}
		if err := p.syncAll(ctx, reconcile); err != nil && ctx.Err() == nil {
			p.log.Warn("sync with the node", "err", err)
		}
	}
}

// followEvents kicks the sync loop on every event of the node, from the
// newest on; it reconnects when the node restarts.
func (p *Provider) followEvents(ctx context.Context) {
	var since uint64
	_ = p.node.Events(ctx, "", 0, false, func(e api.Event) error { since = e.Seq; return nil })
	for ctx.Err() == nil {
		err := p.node.Events(ctx, "", since, true, func(e api.Event) error {
			since = e.Seq
			p.kick()
			return nil
		})
		if err != nil && ctx.Err() == nil {
			time.Sleep(time.Second)
		}
	}
}

func (p *Provider) syncAll(ctx context.Context, reconcile bool) error {
	pps, err := p.node.List(ctx)
	if err != nil {
		return err
	}
	byName := map[string]*api.Pod{}
	for _, pp := range pps {
		byName[pp.Name] = pp
	}
	want := map[string]bool{}
	for _, kp := range p.nodePods() {
		name := PinacleName(kp)
		want[name] = true
		pp := byName[name]
		p.syncOne(ctx, p.latest(kp), pp)
	}
	if reconcile {
		p.deleteOrphans(ctx, pps, want)
	}
	return nil
}

// latest prefers the pod as Create/Update last saw it while the informer
// lags, else the informer's copy (which carries newer annotations).
func (p *Provider) latest(kp *corev1.Pod) *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.known[key(kp)]; ok && k.ResourceVersion > kp.ResourceVersion {
		return k
	}
	return kp
}

func (p *Provider) syncOne(ctx context.Context, kp *corev1.Pod, pp *api.Pod) {
	k := key(kp)
	p.mu.Lock()
	_, created := p.known[k]
	_, refused := p.failed[k]
	p.mu.Unlock()
	if pp == nil && !created && !refused {
		return // not created here yet: the pod controller will call CreatePod
	}
	if pp != nil && !pp.State.IsTransitional() && pp.State != lifecycle.Failed {
		wantHib := hibernateWanted(kp)
		if (wantHib && pp.State == lifecycle.Running) || (!wantHib && pp.State == lifecycle.Hibernated) {
			go func() {
				if err := p.applyHibernate(ctx, kp, pp); err != nil {
					p.log.Warn("hibernate annotation", "pod", k.String(), "err", err)
				}
			}()
		}
	}
	if pp != nil {
		p.publishPorts(ctx, kp, pp)
	}
	st, err := p.status(ctx, kp)
	if err != nil {
		return
	}
	p.mu.Lock()
	prev, seen := p.last[k]
	cb := p.notify
	if !seen || !equality.Semantic.DeepEqual(prev, st) {
		p.last[k] = st
	} else {
		cb = nil
	}
	p.mu.Unlock()
	if cb != nil {
		out := kp.DeepCopy()
		out.Status = st
		cb(out)
	}
}

// publishPorts writes the pinacle pod's ID and forwarded host ports into
// the Kubernetes pod's annotations when they differ.
func (p *Provider) publishPorts(ctx context.Context, kp *corev1.Pod, pp *api.Pod) {
	ports := PortsAnnotation(pp, p.hostIP)
	if p.kube == nil || (kp.Annotations[AnnoPorts] == ports && kp.Annotations[AnnoPodID] == pp.ID) {
		return
	}
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnoPorts: nilIfEmpty(ports), AnnoPodID: pp.ID}}}
	b, _ := json.Marshal(patch)
	_, err := p.kube.CoreV1().Pods(kp.Namespace).Patch(ctx, kp.Name, types.MergePatchType, b, metav1.PatchOptions{})
	if err != nil {
		p.log.Warn("publish ports annotation", "pod", key(kp).String(), "err", err)
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// deleteOrphans deletes the pinacle pods this provider made whose
// Kubernetes pod no longer exists (deleted while the provider was down),
// except hibernated workspaces, whose checkpoint a later pod may need.
func (p *Provider) deleteOrphans(ctx context.Context, pps []*api.Pod, want map[string]bool) {
	for _, pp := range pps {
		if !owned(pp.Name) || want[pp.Name] || pp.State.IsTransitional() {
			continue
		}
		if pp.State == lifecycle.Hibernated && pp.Name[:len(workspacePrefix)] == workspacePrefix {
			continue
		}
		p.log.Info("deleting orphan pinacle pod (its Kubernetes pod is gone)", "pinacle", pp.Name)
		if err := p.node.Delete(ctx, pp.Name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			p.log.Warn("delete orphan", "pinacle", pp.Name, "err", err)
		}
	}
}
