// Package snapshots keeps template snapshots on disk: a checkpoint of a
// running pod with its writable layer and run directory, keyed by a hash
// of the spec fields that shape the runtime, capped in size (LRU).
package snapshots
