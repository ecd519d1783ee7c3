// Package portfwd is the node's userspace TCP port forwarder: it hands out
// stable host ports to pod ports and splices connections on them to the pod.
package portfwd
