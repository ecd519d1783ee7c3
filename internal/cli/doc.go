// Package cli holds what every pinacle-node command shares: the -o output
// formats, JSON errors on stderr, and exit codes by error class.
package cli
