package main

import (
	"github.com/spf13/pflag"

	"github.com/pinacle/pinacle-node/imagestore"
)

// addRegistryFlags adds the registry settings openImageStore reads, to
// every command that may pull (`image` and its subcommands, `run`).
func addRegistryFlags(fs *pflag.FlagSet) {
	fs.StringArray("mirror", nil, "registry mirror HOST=URL, tried before HOST (repeatable; env "+envMirrors+")")
	fs.StringArray("insecure-registry", nil, "registry reachable over plain http (repeatable; loopback needs none; env "+envInsecure+")")
	fs.Int("jobs", imagestore.DefaultJobs, "layers fetched at once")
}
