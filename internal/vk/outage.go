package vk

import (
	"context"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The taints Kubernetes puts on a node whose lease expired or that says
// it is not ready. Pods get a toleration of each with tolerationSeconds
// 300 (the DefaultTolerationSeconds admission plugin), after which the
// taint-eviction controller deletes them; for a pinacle pod that means
// deleting a workspace because its node restarted.
var outageTaints = []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable}

// OutageTolerations returns kp's tolerations with the outage ones made
// unbounded (tolerationSeconds cleared, or added when missing), and
// whether that changed anything. Kubernetes allows changing
// tolerationSeconds of an existing toleration and adding tolerations on a
// running pod, so this is a legal update.
func OutageTolerations(kp *corev1.Pod) ([]corev1.Toleration, bool) {
	out := append([]corev1.Toleration(nil), kp.Spec.Tolerations...)
	changed := false
	for _, taint := range outageTaints {
		found := false
		for i := range out {
			t := &out[i]
			if t.Key == taint && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
				found = true
				if t.TolerationSeconds != nil {
					t.TolerationSeconds = nil
					changed = true
				}
			}
		}
		if !found {
			out = append(out, corev1.Toleration{Key: taint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
			changed = true
		}
	}
	return out, changed
}

// keepThroughOutage patches the pod's tolerations (see OutageTolerations).
// A failure is logged: the pod still runs, only less safely.
func (p *Provider) keepThroughOutage(ctx context.Context, kp *corev1.Pod) {
	tols, changed := OutageTolerations(kp)
	if !changed || p.kube == nil {
		return
	}
	b, _ := json.Marshal(map[string]any{"spec": map[string]any{"tolerations": tols}})
	_, err := p.kube.CoreV1().Pods(kp.Namespace).Patch(ctx, kp.Name, types.MergePatchType, b, metav1.PatchOptions{})
	if err != nil {
		p.log.Warn("could not make the pod tolerate node outages; a long outage may evict it", "pod", key(kp).String(), "err", err)
	}
}
