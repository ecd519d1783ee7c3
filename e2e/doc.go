// Package e2e runs the real pinacle-node binary as root against real runsc,
// real CNI plugins and a registry on 127.0.0.1, then checks for leaks.
package e2e
