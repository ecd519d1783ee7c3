// Package k8s holds the Kubernetes rig test: a control plane built from
// the module proxy and three pinacle nodes joined through `pinacle-node
// vk`. It is behind the k8srig build tag (make k8s-e2e), so `make e2e`
// does not need the Kubernetes binaries.
package k8s
