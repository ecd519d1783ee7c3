// Package api is the node's API contract without its implementation: the
// wire types, the Service interface and the client for the unix socket;
// it imports nothing Linux-only, so the macOS host CLI builds with it.
package api
