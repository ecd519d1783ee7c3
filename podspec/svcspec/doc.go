// Package svcspec holds the service and health-check types that the pod
// spec and the in-sandbox init share, on the standard library alone, so
// that pods' PID 1 (cmd/pinacle-init) links none of podspec's parsers.
package svcspec
