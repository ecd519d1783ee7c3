package vk

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Annotations and labels of the pinacle provider. Users set the first
// group on a Pod; the node writes the second.
const (
	// AnnoTemplate names a pinacle template to merge the pod onto.
	AnnoTemplate = "pinacle.dev/template"
	// AnnoServices is a YAML or JSON list of pinacle services (podspec
	// Service) that replaces the services derived from the containers.
	AnnoServices = "pinacle.dev/services"
	// AnnoTier forces a resource tier instead of the one the requests
	// and limits pick.
	AnnoTier = "pinacle.dev/tier"
	// AnnoHibernate: "true" hibernates the pod in place; removing it (or
	// any other value) wakes it.
	AnnoHibernate = "pinacle.dev/hibernate"
	// AnnoWorkspace names a workspace that outlives the Kubernetes pod:
	// the pinacle pod is named after it rather than after the pod's UID,
	// and a hibernated workspace is kept when the Kubernetes pod is
	// deleted, so a new pod with the same workspace wakes it.
	AnnoWorkspace = "pinacle.dev/workspace"

	// AnnoPorts (written by the node) lists the forwarded host ports as
	// JSON: [{"name","containerPort","hostPort","address"}].
	AnnoPorts = "pinacle.dev/ports"
	// AnnoPodID (written by the node) is the pinacle pod's ID.
	AnnoPodID = "pinacle.dev/pod-id"

	// LabelRuntime is the node label that says pods run in gVisor.
	LabelRuntime = "pinacle.dev/runtime"
	// TaintKey is the node's taint: only pods that tolerate it land there.
	TaintKey = "pinacle.dev/runtime"
	// RuntimeGVisor is the value of LabelRuntime and TaintKey.
	RuntimeGVisor = "gvisor"
	// namePrefix marks the pinacle pods this provider owns.
	namePrefix = "k8s-"
	// workspacePrefix marks pods named after a workspace annotation.
	workspacePrefix = "ws-"
)

// PinacleName is the pinacle pod name of a Kubernetes pod: a DNS label
// readable by people (namespace and name, shortened) and unique by the
// pod's UID, so a pod deleted and created again under the same name is a
// new pinacle pod; with a workspace annotation it is the workspace's name,
// which a recreated pod takes over.
func PinacleName(p *corev1.Pod) string {
	if ws := p.Annotations[AnnoWorkspace]; ws != "" {
		return workspacePrefix + shorten(ws, 63-len(workspacePrefix))
	}
	sum := sha256.Sum256([]byte(p.UID))
	if p.UID == "" {
		sum = sha256.Sum256([]byte(p.Namespace + "/" + p.Name))
	}
	suffix := "-" + hex.EncodeToString(sum[:])[:10]
	return namePrefix + shorten(p.Namespace+"-"+p.Name, 63-len(namePrefix)-len(suffix)) + suffix
}

// owned says whether a pinacle pod name is one this provider made.
func owned(name string) bool {
	return strings.HasPrefix(name, namePrefix) || strings.HasPrefix(name, workspacePrefix)
}

// shorten makes s a DNS label fragment of at most n characters.
func shorten(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > n {
		out = strings.TrimRight(out[:n], "-")
	}
	if out == "" {
		out = "pod"
	}
	return out
}
