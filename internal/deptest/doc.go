// Package deptest checks from tests that a package builds for another
// GOOS and imports only what its import rule allows.
package deptest
