package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/render"
)

// Client commands find the daemon through --socket (env PINACLE_SOCKET),
// and show pod ports as URLs on --url-host (env PINACLE_URL_HOST).
const (
	envSocket  = "PINACLE_SOCKET"
	envURLHost = "PINACLE_URL_HOST"
)

// addClientFlags registers the flags every client command shares on a
// parent command, persistently.
func addClientFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().String("socket", envOr(envSocket, api.DefaultSocketPath), "pinacle-node API socket (env "+envSocket+")")
	cmd.PersistentFlags().String("url-host", envOr(envURLHost, ""), "host to show in port URLs instead of the node's own (default 127.0.0.1; env "+envURLHost+")")
}

// newClient returns an API client for the socket chosen on cmd.
func newClient(cmd *cobra.Command) *api.Client {
	path, _ := cmd.Flags().GetString("socket")
	return api.NewClient(path)
}

// fillURLs gives each forwarded port a URL on --url-host: an explicit
// --url-host replaces the node's URLs; otherwise they are kept and only
// missing ones use 127.0.0.1 (the Lima VM forwards 30000-40000 to the
// Mac's loopback).
func fillURLs(cmd *cobra.Command, ps ...*api.Pod) {
	host, _ := cmd.Flags().GetString("url-host")
	render.FillURLs(host, ps...)
}

// podRef is how a pod is named in messages: its name and ID.
func podRef(p *api.Pod) string {
	if p.Name == "" || p.Name == p.ID {
		return p.ID
	}
	return fmt.Sprintf("%s (%s)", p.Name, p.ID)
}
