package gateway

import (
	"net"
	"strings"
)

// Hosts are "<port>-<pod>.<domain>": the pod part is the pod ID, which
// has no '-' (see internal/pods), so the last '-' of the label splits it
// from the port name, which may contain '-'.

// hostLabel is the first label of a pod port's host name.
func hostLabel(pod, port string) string { return port + "-" + pod }

// parseHost splits a request's Host into pod and port for domain. It
// fails for any other domain (so a DNS-rebound name is never served), an
// IP address, or a label that is not "<port>-<pod>".
func parseHost(host, domain string) (pod, port string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	label, ok := strings.CutSuffix(host, "."+domain)
	if !ok || label == "" || strings.Contains(label, ".") {
		return "", "", false
	}
	i := strings.LastIndexByte(label, '-')
	if i <= 0 || i == len(label)-1 {
		return "", "", false
	}
	return label[i+1:], label[:i], true
}
