// Package gateway is the node's authenticating HTTP gateway: one listener
// that routes <port>-<pod>.<domain> to a pod's port, admitting only
// requests that carry a signed, expiring, revocable token for that host.
package gateway
