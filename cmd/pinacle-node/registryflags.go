package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
)

// Registry settings may also come from the environment (docs/imagestore.md):
//
//	PINACLE_REGISTRY_MIRRORS="docker.io=http://127.0.0.1:5000,ghcr.io=https://m.example"
//	PINACLE_INSECURE_REGISTRIES="10.0.0.5:5000,registry.lan"
const (
	envMirrors  = "PINACLE_REGISTRY_MIRRORS"
	envInsecure = "PINACLE_INSECURE_REGISTRIES"
)

// addRegistryFlags adds the registry settings openImageStore reads, to
// every command that may pull (`image` and its subcommands, `run`).
func addRegistryFlags(fs *pflag.FlagSet) {
	fs.StringArray("mirror", nil, "registry mirror HOST=URL, tried before HOST; replaces node.yaml's mirrors for HOST (repeatable; env "+envMirrors+")")
	fs.StringArray("insecure-registry", nil, "registry reachable over plain http, added to node.yaml's (repeatable; loopback needs none; env "+envInsecure+")")
	fs.Int("jobs", imagestore.DefaultJobs, "layers fetched at once")
}

// applyRegistryFlags folds the env and flag registry settings into cfg's
// registry section (node.yaml's): the mirrors given for a host replace the
// file's mirrors for that host, in the order given (env first); insecure
// registries are added.
func applyRegistryFlags(cmd *cobra.Command, cfg *nodeconfig.Config) error {
	mirrorFlags, _ := cmd.Flags().GetStringArray("mirror")
	insecure, _ := cmd.Flags().GetStringArray("insecure-registry")
	if v := os.Getenv(envMirrors); v != "" {
		mirrorFlags = append(splitList(v), mirrorFlags...)
	}
	if v := os.Getenv(envInsecure); v != "" {
		insecure = append(splitList(v), insecure...)
	}
	given := map[string][]string{}
	for _, m := range mirrorFlags {
		host, u, ok := strings.Cut(m, "=")
		if !ok {
			return fmt.Errorf("--mirror %q: want HOST=URL: %w", m, errdefs.ErrInvalidArgument)
		}
		given[host] = append(given[host], u)
	}
	mirrors := maps.Clone(cfg.Registry.Mirrors)
	if mirrors == nil {
		mirrors = map[string][]string{}
	}
	maps.Copy(mirrors, given)
	cfg.Registry.Mirrors = mirrors
	for _, r := range insecure {
		if !slices.Contains(cfg.Registry.InsecureRegistries, r) {
			cfg.Registry.InsecureRegistries = append(cfg.Registry.InsecureRegistries, r)
		}
	}
	return nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
}
