package storeadapt

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/portfwd"
)

// portStore is a portfwd.AllocationStore on the store's port sets.
type portStore struct{ st *store.Store }

var _ portfwd.AllocationStore = (*portStore)(nil)

// PortStore returns a portfwd.AllocationStore that keeps each pod's
// allocations as one port set in st. Save replaces the set in one
// transaction and fails with ErrConflict naming the holder if another pod
// holds one of its host ports; it requires the pod's record to exist
// (ErrNotFound), so allocations never outlive their pod, and DeletePod
// removes them with the record.
func PortStore(st *store.Store) portfwd.AllocationStore { return &portStore{st: st} }

// portKey names an allocation within its pod as portfwd does: the port's
// name, or "#<pod port>" for an unnamed one.
func portKey(a portfwd.Allocation) string {
	if a.Name != "" {
		return a.Name
	}
	return "#" + strconv.Itoa(int(a.PodPort))
}

func (s *portStore) Load(ctx context.Context) ([]portfwd.Allocation, error) {
	sets, err := s.st.PortSets(ctx)
	if err != nil {
		return nil, err
	}
	var out []portfwd.Allocation
	for _, ps := range sets {
		for _, b := range ps.Bindings {
			var a portfwd.Allocation
			if err := fileutil.UnmarshalStrict(b.Data, &a); err != nil {
				return nil, fmt.Errorf("pod %s port %s: stored allocation: %w: %w", ps.PodID, b.Key, err, errdefs.ErrInvalidArgument)
			}
			// The store's pod and host port are the ones its index
			// enforces; a record that disagrees is corrupt, not a guess.
			if a.PodID != ps.PodID || int(a.HostPort) != b.HostPort || portKey(a) != b.Key {
				return nil, fmt.Errorf("pod %s port %s: stored allocation %+v disagrees with its index entry (host port %d): %w",
					ps.PodID, b.Key, a, b.HostPort, errdefs.ErrInvalidArgument)
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *portStore) Save(ctx context.Context, podID string, allocs []portfwd.Allocation) error {
	set := make([]store.PortBinding, len(allocs))
	for i, a := range allocs {
		if a.PodID != podID {
			return fmt.Errorf("portfwd: save pod %s: allocation for pod %s: %w", podID, a.PodID, errdefs.ErrInvalidArgument)
		}
		data, err := json.Marshal(a)
		if err != nil {
			return err
		}
		set[i] = store.PortBinding{Key: portKey(a), HostPort: int(a.HostPort), Data: data}
	}
	return s.st.ReplacePortSet(ctx, podID, set)
}

func (s *portStore) Delete(ctx context.Context, podID string) error {
	return s.st.DeletePortSet(ctx, podID)
}
