package oci

// The spec builder's bundle: config.json and the /etc files it bind-mounts.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinacle/pinacle-node/internal/fileutil"
)

type etcFile struct {
	name, dest string
	data       []byte
}

func (o SpecOptions) etcFiles() []etcFile {
	var fs []etcFile
	if o.Hostname != "" {
		fs = append(fs, etcFile{"hostname", "/etc/hostname", []byte(o.Hostname + "\n")})
	}
	if o.Hosts != nil {
		fs = append(fs, etcFile{"hosts", "/etc/hosts", o.Hosts})
	}
	if o.ResolvConf != nil {
		fs = append(fs, etcFile{"resolv.conf", "/etc/resolv.conf", o.ResolvConf})
	}
	return fs
}

// NewBundle builds the spec, writes the /etc files it bind-mounts and then
// config.json (atomically: a reader never sees half a file) into bundleDir.
func NewBundle(bundleDir string, o SpecOptions) (*specs.Spec, error) {
	s, err := BuildSpec(bundleDir, o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(bundleDir, 0o711); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", bundleDir, err)
	}
	for _, f := range o.etcFiles() {
		if err := fileutil.WriteAtomic(filepath.Join(bundleDir, f.name), f.data, 0o644); err != nil {
			return nil, err
		}
	}
	if err := WriteSpec(bundleDir, s); err != nil {
		return nil, err
	}
	return s, nil
}

// WriteSpec writes s as bundleDir/config.json atomically.
func WriteSpec(bundleDir string, s *specs.Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	return fileutil.WriteAtomic(filepath.Join(bundleDir, "config.json"), b, 0o600)
}

// ReadSpec reads bundleDir/config.json.
func ReadSpec(bundleDir string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundleDir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", bundleDir, err)
	}
	var s specs.Spec
	if err := fileutil.UnmarshalStrict(b, &s); err != nil {
		return nil, fmt.Errorf("bundle %s: decode config.json: %w", bundleDir, err)
	}
	return &s, nil
}

// SetNetNS points the bundle's network namespace at path. A pod whose
// namespace was made again under another name (its old one was a warm
// pool entry's, and the machine restarted) is restored from the same
// bundle; runsc allows a namespace's path to change across a restore.
func SetNetNS(bundleDir, path string) error {
	s, err := ReadSpec(bundleDir)
	if err != nil {
		return err
	}
	if s.Linux == nil {
		return fmt.Errorf("bundle %s: no linux section", bundleDir)
	}
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			if ns.Path == path {
				return nil
			}
			s.Linux.Namespaces[i].Path = path
			return WriteSpec(bundleDir, s)
		}
	}
	return fmt.Errorf("bundle %s: no network namespace", bundleDir)
}
