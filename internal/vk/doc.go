// Package vk makes a pinacle node a Kubernetes node through virtual-kubelet:
// it maps Kubernetes Pods to pinacle pods and drives them through the
// node's own API (api.Service), so there is no second way to run a pod.
package vk
