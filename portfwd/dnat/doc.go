// Package dnat is portfwd's kernel fast path: iptables DNAT rules that send
// a running pod's host ports straight to the pod, with counters and a
// connection cap, driven by iptables-restore.
package dnat
