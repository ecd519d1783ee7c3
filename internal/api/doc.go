// Package api serves a pods.Service as HTTP+JSON over a unix socket and
// provides the matching client, so the CLI (and a Kubernetes provider) can
// drive a node's pods through the same interface, in or out of process.
package api
