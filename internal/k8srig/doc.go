// Package k8srig runs a small Kubernetes control plane (etcd,
// kube-apiserver, kube-scheduler, kube-controller-manager, all on
// 127.0.0.1 with locally made certificates) and pinacle nodes that join
// it through `pinacle-vk`, for `make k8s-rig` and the rig's tests.
package k8srig
