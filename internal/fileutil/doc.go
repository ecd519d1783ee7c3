// Package fileutil holds the node's one atomic file write, its one file lock and its one strict reader of the JSON records it keeps on disk.
package fileutil
