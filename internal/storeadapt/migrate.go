package storeadapt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/portfwd"
)

// The files the standalone stores wrote under the data root, and the
// suffix they get once imported.
const (
	PortsFile       = "ports.json"
	SubnetsFile     = "netns/subnets.json"
	MigratedSuffix  = ".migrated"
	lockSuffix      = ".lock"
	migrateLogGroup = "migrate"
)

type migrateOptions struct{ log *slog.Logger }

// MigrateOption configures Migrate.
type MigrateOption func(*migrateOptions) error

// WithLogger makes Migrate log what it imported and skipped; it is silent
// without one.
func WithLogger(l *slog.Logger) MigrateOption {
	return func(o *migrateOptions) error {
		if l == nil {
			return fmt.Errorf("logger: must not be nil: %w", errdefs.ErrInvalidArgument)
		}
		o.log = l
		return nil
	}
}

// Migrate imports the allocations that the node kept in JSON files
// (<dataRoot>/ports.json and <dataRoot>/netns/subnets.json, legacy.go)
// before it stored them in st, then renames each file to
// *.migrated so the import happens once. Run it after store.Open and
// before portfwd.New and the first netns Setup.
//
// A pod that already has a port set or subnet in st keeps it: st is the
// newer record. An entry whose pod has no record is skipped (the pod was
// deleted; a network still standing for it shows up in the host routes
// netns reserves anyway). A conflict with what st holds fails the import
// and leaves the file in place, so nothing is lost; pods imported before
// the failure stay imported, and a rerun skips them.
func Migrate(ctx context.Context, st *store.Store, dataRoot string, opts ...MigrateOption) error {
	o := migrateOptions{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	if st == nil {
		return fmt.Errorf("migrate: state store required: %w", errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(dataRoot) {
		return fmt.Errorf("migrate: data root %q must be absolute: %w", dataRoot, errdefs.ErrInvalidArgument)
	}
	log := o.log.WithGroup(migrateLogGroup)
	if err := migratePorts(ctx, st, filepath.Join(dataRoot, PortsFile), log); err != nil {
		return err
	}
	return migrateSubnets(ctx, st, filepath.Join(dataRoot, SubnetsFile), log)
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func migratePorts(ctx context.Context, st *store.Store, path string, log *slog.Logger) error {
	if ok, err := exists(path); !ok {
		return err
	}
	allocs, err := readLegacyPorts(ctx, path)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	byPod := map[string][]portfwd.Allocation{}
	var order []string
	for _, a := range allocs {
		if byPod[a.PodID] == nil {
			order = append(order, a.PodID)
		}
		byPod[a.PodID] = append(byPod[a.PodID], a)
	}
	have, err := st.PortSets(ctx)
	if err != nil {
		return err
	}
	held := map[string]bool{}
	for _, ps := range have {
		held[ps.PodID] = true
	}
	ps := PortStore(st)
	for _, pod := range order {
		if held[pod] {
			log.Info("port allocations already in the state store; file's copy ignored", "pod", pod)
			continue
		}
		err := ps.Save(ctx, pod, byPod[pod])
		switch {
		case errdefs.IsNotFound(err):
			log.Warn("port allocations of a pod with no record skipped", "pod", pod, "allocations", byPod[pod])
		case err != nil:
			return fmt.Errorf("migrate %s: pod %s: %w", path, pod, err)
		default:
			log.Info("port allocations imported", "pod", pod, "count", len(byPod[pod]))
		}
	}
	return retire(path)
}

func migrateSubnets(ctx context.Context, st *store.Store, path string, log *slog.Logger) error {
	if ok, err := exists(path); !ok {
		return err
	}
	list, err := readLegacySubnets(ctx, path)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	for _, u := range list {
		got, err := st.AllocateSubnetWith(ctx, u.Owner, func([]store.SubnetAllocation) (netip.Prefix, error) {
			return u.Prefix, nil
		})
		switch {
		case errdefs.IsNotFound(err):
			log.Warn("subnet of a pod with no record skipped", "pod", u.Owner, "subnet", u.Prefix)
		case err != nil:
			return fmt.Errorf("migrate %s: pod %s: %w", path, u.Owner, err)
		case got != u.Prefix:
			log.Info("subnet already in the state store; file's copy ignored", "pod", u.Owner, "stored", got, "file", u.Prefix)
		default:
			log.Info("subnet imported", "pod", u.Owner, "subnet", u.Prefix)
		}
	}
	return retire(path)
}

// retire renames an imported file to *.migrated (kept for inspection and
// as a way back) and removes its lock file, then syncs the directory so
// the rename survives a crash: a file seen again would be imported again,
// harmlessly, but only because st's copy wins.
func retire(path string) error {
	if err := os.Rename(path, path+MigratedSuffix); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := os.Remove(path + lockSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := fileutil.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
