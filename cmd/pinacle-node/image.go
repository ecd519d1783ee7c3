package main

import "github.com/spf13/cobra"

// newImageCmd is owned by the imagestore work; placeholder until it lands.
func newImageCmd() *cobra.Command { return &cobra.Command{Use: "image", Short: "Manage images"} }
