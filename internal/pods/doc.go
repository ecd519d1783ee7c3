// Package pods is the pod manager: it drives each pod through its
// lifecycle (image, rootfs, network, ports, sandbox, services), persists
// every step in the state store, and recovers after a crash.
package pods
