package api

import (
	"context"
	"net/http"
	"time"
)

// NodeStatuser is implemented by a Service that reports the node's own
// status (the pod manager in the daemon, and Client over the socket).
type NodeStatuser interface {
	// NodeStatus reports the node's capacity, what pods and the warm
	// sandbox pool hold of it, and the pool's entries.
	NodeStatus(ctx context.Context) (*NodeStatus, error)
}

// NodeStatus is the body of GET /v1/node.
type NodeStatus struct {
	// Capacity is the host's: its CPUs and memory.
	Capacity NodeResources `json:"capacity"`
	// Pods is what the pods that hold a sandbox reserve (their limits).
	Pods NodeResources `json:"pods"`
	// Warm is what the warm pool's entries reserve (their limits): they
	// count against the capacity as pods do.
	Warm NodeResources `json:"warm"`
	// Free is Capacity less Pods and Warm.
	Free     NodeResources  `json:"free"`
	WarmPool WarmPoolStatus `json:"warmPool"`
}

// NodeResources is an amount of CPU and memory (and how many hold it).
type NodeResources struct {
	Count       int     `json:"count"`
	CPUCores    float64 `json:"cpuCores"`
	MemoryBytes int64   `json:"memoryBytes"`
}

// WarmPoolStatus is the warm sandbox pool (docs/warmpool.md).
type WarmPoolStatus struct {
	Enabled bool `json:"enabled"`
	Max     int  `json:"max"`
	Recent  int  `json:"recent"`
	// MemoryBytes and DiskBytes are what the entries hold on the host
	// now: their memory cgroups' usage and their directories' blocks.
	MemoryBytes int64       `json:"memoryBytes"`
	DiskBytes   int64       `json:"diskBytes"`
	Entries     []WarmEntry `json:"entries"`
	// LastError is the last failed fill, if any.
	LastError string `json:"lastError,omitempty"`
}

// WarmEntry is one booted sandbox waiting for a pod.
type WarmEntry struct {
	ID          string    `json:"id"`
	Source      string    `json:"source"` // "template NAME", "image REF" or "recent"
	Image       string    `json:"image"`
	Tier        string    `json:"tier,omitempty"`
	IP          string    `json:"ip,omitempty"`
	CPUCores    float64   `json:"cpuCores"`
	MemoryLimit int64     `json:"memoryLimitBytes"`
	Ready       bool      `json:"ready"`
	Created     time.Time `json:"created"`
	MemoryBytes int64     `json:"memoryBytes"`
	DiskBytes   int64     `json:"diskBytes"`
}

// NodeStatus asks the node for its status.
func (c *Client) NodeStatus(ctx context.Context) (*NodeStatus, error) {
	var s NodeStatus
	if err := c.call(ctx, http.MethodGet, "/v1/node", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

var _ NodeStatuser = (*Client)(nil)
