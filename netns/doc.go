// Package netns gives each pod a named network namespace wired through CNI
// (bridge, host-local, bandwidth) plus the node's own iptables isolation and
// egress policy, and undoes all of it from persisted state alone.
package netns
