// Package fileutil holds the node's one atomic file write and its one file lock.
package fileutil
