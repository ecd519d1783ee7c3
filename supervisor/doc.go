// Package supervisor is the in-sandbox init: it reaps zombies, starts pod
// services in dependency order, health-checks and restarts them, writes their
// logs to size-capped files and publishes a status file the node reads from
// the host side of a bind mount.
package supervisor
