package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// SubnetStore persists which pod owns which subnet. The node's bbolt store
// can implement it later on top of AllocateSubnet and CheckSubnet.
type SubnetStore interface {
	// Reserve gives owner a subnet: want if valid (checked with CheckSubnet),
	// else one allocated from the pool. reserved lists extra taken ranges
	// (host routes) that are not persisted. Reserving again for the same
	// owner returns its existing subnet if compatible.
	Reserve(ctx context.Context, owner string, want netip.Prefix, reserved []Used) (netip.Prefix, error)
	// Release frees owner's subnet; releasing nothing is success.
	Release(ctx context.Context, owner string) error
	// List returns every reservation.
	List(ctx context.Context) ([]Used, error)
}

// FileSubnetStore is a SubnetStore in one JSON file guarded by flock(2),
// good for a standalone node and for tests; several processes may share it.
type FileSubnetStore struct {
	path string
	pool netip.Prefix
	bits int
}

var _ SubnetStore = (*FileSubnetStore)(nil)

// NewFileSubnetStore stores reservations in path, allocating /bits subnets
// from pool.
func NewFileSubnetStore(path string, pool netip.Prefix, bits int) (*FileSubnetStore, error) {
	if !pool.IsValid() || !pool.Addr().Is4() {
		return nil, fmt.Errorf("subnet pool %s: must be IPv4: %w", pool, errdefs.ErrInvalidArgument)
	}
	if bits < pool.Bits() || bits > 30 {
		return nil, fmt.Errorf("pod subnet size /%d: must be within pool /%d and /30: %w", bits, pool.Bits(), errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return &FileSubnetStore{path: path, pool: pool.Masked(), bits: bits}, nil
}

type subnetFile struct {
	Subnets map[string]netip.Prefix `json:"subnets"`
}

// locked runs fn with the file's contents under an exclusive flock and
// writes them back (atomically, via rename) if fn says so.
func (s *FileSubnetStore) locked(fn func(f *subnetFile) (bool, error)) error {
	lk, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lk.Close()
	if err := unix.Flock(int(lk.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("flock %s: %w", lk.Name(), err)
	}
	f := subnetFile{Subnets: map[string]netip.Prefix{}}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("decode %s: %w", s.path, err)
		}
		if f.Subnets == nil {
			f.Subnets = map[string]netip.Prefix{}
		}
	}
	write, err := fn(&f)
	if err != nil || !write {
		return err
	}
	return writeFileAtomic(s.path, f)
}

func (s *FileSubnetStore) Reserve(_ context.Context, owner string, want netip.Prefix, reserved []Used) (netip.Prefix, error) {
	var got netip.Prefix
	err := s.locked(func(f *subnetFile) (bool, error) {
		if have, ok := f.Subnets[owner]; ok {
			if want.IsValid() && want != have {
				return false, fmt.Errorf("%s already holds subnet %s, not %s: %w", owner, have, want, errdefs.ErrConflict)
			}
			got = have
			return false, nil
		}
		used := slices0(reserved)
		for o, p := range f.Subnets {
			used = append(used, Used{Prefix: p, Owner: "pod " + o})
		}
		var err error
		if want.IsValid() {
			err = CheckSubnet(want, s.pool, used)
			got = want
		} else {
			got, err = AllocateSubnet(s.pool, s.bits, used)
		}
		if err != nil {
			return false, err
		}
		f.Subnets[owner] = got
		return true, nil
	})
	return got, err
}

func (s *FileSubnetStore) Release(_ context.Context, owner string) error {
	return s.locked(func(f *subnetFile) (bool, error) {
		if _, ok := f.Subnets[owner]; !ok {
			return false, nil
		}
		delete(f.Subnets, owner)
		return true, nil
	})
}

func (s *FileSubnetStore) List(_ context.Context) ([]Used, error) {
	var out []Used
	err := s.locked(func(f *subnetFile) (bool, error) {
		for o, p := range f.Subnets {
			out = append(out, Used{Prefix: p, Owner: o})
		}
		return false, nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Owner < out[j].Owner })
	return out, err
}

func slices0(u []Used) []Used { return append([]Used(nil), u...) }

// writeFileAtomic writes v as JSON to path via a temp file and rename, so a
// crash leaves the old or the new content, never half of either.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
