package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// PortBinding is one entry of a pod's port set: the host port a forwarder
// (portfwd) gave one of the pod's ports. The store checks Key and HostPort
// and keeps Data, the caller's own record of the binding, opaque.
type PortBinding struct {
	// Key names the port within the pod ("web", "#3000"); unique in a set.
	Key string `json:"key"`
	// HostPort is the host port, 1-65535; unique across every pod.
	HostPort int `json:"hostPort"`
	// Data is the caller's JSON for the binding (portfwd.Allocation).
	Data json.RawMessage `json:"data,omitempty"`
}

// PodPortSet is the port set of one pod, in the order it was saved.
type PodPortSet struct {
	PodID    string        `json:"podId"`
	Bindings []PortBinding `json:"bindings"`
}

// '/' cannot occur in a pod ID (errdefs.ValidateID), so it separates the
// pod from the port key unambiguously.
func ownerValue(podID, key string) []byte { return []byte(podID + "/" + key) }

func portBytes(p int) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, uint16(p))
	return b
}

// ReplacePortSet makes set the pod's whole port set, in one transaction:
// the previous set's host ports are freed and the new ones taken in the
// host-port index, so no two pods can hold one host port. A host port held
// by another pod fails with ErrConflict naming the holder and changes
// nothing. An empty set deletes the pod's set. The pod
// must exist (ErrNotFound), so no set outlives its pod: DeletePod removes
// it.
func (s *Store) ReplacePortSet(ctx context.Context, podID string, set []PortBinding) error {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return err
	}
	keys, ports := map[string]bool{}, map[int]bool{}
	for _, b := range set {
		switch {
		case b.Key == "":
			return fmt.Errorf("pod %s: port binding for host port %d has no key: %w", podID, b.HostPort, errdefs.ErrInvalidArgument)
		case keys[b.Key]:
			return fmt.Errorf("pod %s: port %s listed twice: %w", podID, b.Key, errdefs.ErrInvalidArgument)
		case b.HostPort < 1 || b.HostPort > 65535:
			return fmt.Errorf("pod %s port %s: host port %d: must be 1-65535: %w", podID, b.Key, b.HostPort, errdefs.ErrInvalidArgument)
		case ports[b.HostPort]:
			return fmt.Errorf("pod %s: host port %d listed twice: %w", podID, b.HostPort, errdefs.ErrInvalidArgument)
		}
		if err := validJSON("port "+b.Key+" data", b.Data); err != nil {
			return fmt.Errorf("pod %s: %w", podID, err)
		}
		keys[b.Key], ports[b.HostPort] = true, true
	}
	if len(set) == 0 {
		return s.DeletePortSet(ctx, podID)
	}
	raw, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("pod %s: encode port set: %w", podID, err)
	}
	return s.update(ctx, func(t *txn) error {
		if err := mustExist(t.Tx, podID); err != nil {
			return err
		}
		old, err := getPortSet(t.Tx, podID)
		if err != nil {
			return err
		}
		mine := map[int]string{} // host port -> key, in the old set
		for _, b := range old {
			mine[b.HostPort] = b.Key
		}
		owners := t.Bucket(bucketPortOwners)
		for _, b := range set {
			holder := owners.Get(portBytes(b.HostPort))
			if holder == nil {
				continue
			}
			if key, ok := mine[b.HostPort]; ok && bytes.Equal(holder, ownerValue(podID, key)) {
				continue
			}
			return fmt.Errorf("pod %s port %s: host port %d: %w", podID, b.Key, b.HostPort, holderConflict(holder))
		}
		if err := releasePortSet(t.Tx, podID, old); err != nil {
			return err
		}
		for _, b := range set {
			if err := owners.Put(portBytes(b.HostPort), ownerValue(podID, b.Key)); err != nil {
				return err
			}
		}
		return t.Bucket(bucketPortSets).Put([]byte(podID), raw)
	})
}

// holderConflict says who holds a host port, from its port-owners value.
func holderConflict(holder []byte) error {
	pod, key, _ := bytes.Cut(holder, []byte("/"))
	return fmt.Errorf("held by pod %s (port %s): %w", pod, key, errdefs.ErrConflict)
}

// DeletePortSet removes the pod's port set and frees its host ports.
// Deleting a set that does not exist succeeds; the pod need not exist.
func (s *Store) DeletePortSet(ctx context.Context, podID string) error {
	return s.update(ctx, func(t *txn) error {
		old, err := getPortSet(t.Tx, podID)
		if err != nil {
			return err
		}
		return releasePortSet(t.Tx, podID, old)
	})
}

// PortSets returns every pod's port set, sorted by pod ID, each in the
// order it was saved.
func (s *Store) PortSets(ctx context.Context) ([]PodPortSet, error) {
	var out []PodPortSet
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPortSets).ForEach(func(k, v []byte) error {
			set, err := decodePortSet(k, v)
			if err != nil {
				return err
			}
			out = append(out, PodPortSet{PodID: string(k), Bindings: set})
			return nil
		})
	})
	return out, err
}

func getPortSet(tx *bolt.Tx, podID string) ([]PortBinding, error) {
	v := tx.Bucket(bucketPortSets).Get([]byte(podID))
	if v == nil {
		return nil, nil
	}
	return decodePortSet([]byte(podID), v)
}

func decodePortSet(podID, v []byte) ([]PortBinding, error) {
	var set []PortBinding
	if err := fileutil.UnmarshalStrict(v, &set); err != nil {
		return nil, fmt.Errorf("port set of pod %s: corrupt: %w", podID, err)
	}
	return set, nil
}

// releasePortSet deletes the pod's set (old, as read in this transaction)
// and the reverse entries that still point at it.
func releasePortSet(tx *bolt.Tx, podID string, old []PortBinding) error {
	if old == nil {
		return nil
	}
	owners := tx.Bucket(bucketPortOwners)
	for _, b := range old {
		k := portBytes(b.HostPort)
		if bytes.Equal(owners.Get(k), ownerValue(podID, b.Key)) {
			if err := owners.Delete(k); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketPortSets).Delete([]byte(podID))
}

// releaseAllPorts frees the pod's port set.
func releaseAllPorts(tx *bolt.Tx, podID string) error {
	old, err := getPortSet(tx, podID)
	if err != nil {
		return err
	}
	return releasePortSet(tx, podID, old)
}
