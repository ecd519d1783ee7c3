// Package store keeps the node's persistent state (pods, port and subnet
// allocations, the event log) in one bbolt file, with every state change
// and its event committed in the same transaction.
package store
