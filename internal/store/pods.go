package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// Pod is the persisted record of one pod. Spec and Status are opaque JSON
// so this package does not depend on podspec, netns or portfwd: Spec is
// what the user asked for, Status the runtime facts the manager records
// (netns path, IP, sandbox id, ports, provisioning steps done, ...).
type Pod struct {
	ID     string          `json:"id"`
	Name   string          `json:"name"`
	State  lifecycle.State `json:"state"`
	Reason string          `json:"reason,omitempty"` // why the pod entered State (required for failed)
	Spec   json.RawMessage `json:"spec,omitempty"`
	Status json.RawMessage `json:"status,omitempty"`
	// Generation starts at 1 and grows by one with every committed change;
	// callers use it to detect concurrent changes and order snapshots.
	Generation     int64     `json:"generation"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
	StateChangedAt time.Time `json:"stateChangedAt"`
}

// InFlight is the operation that was in flight when the record was
// written: non-empty exactly when State is transitional. After a daemon
// restart it tells the manager what to finish or undo. It is derived from
// State rather than stored, so the two cannot disagree.
func (p *Pod) InFlight() lifecycle.Op { return p.State.InFlight() }

func (p *Pod) clone() *Pod {
	c := *p
	c.Spec = slices.Clone(p.Spec)
	c.Status = slices.Clone(p.Status)
	return &c
}

// Event types written by the store itself. Other packages add their own
// (e.g. "oom", "service", "port") through AppendEvent.
const (
	EventState   = "state"   // a lifecycle transition: From, To, Reason
	EventDeleted = "deleted" // the pod record was removed
)

func getPod(tx *bolt.Tx, id string) (*Pod, error) {
	raw := tx.Bucket(bucketPods).Get([]byte(id))
	if raw == nil {
		return nil, fmt.Errorf("pod %s: %w", id, errdefs.ErrNotFound)
	}
	p, err := decodePod(raw)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", id, err)
	}
	return p, nil
}

func putPod(tx *bolt.Tx, p *Pod) error {
	raw, err := encodePod(p)
	if err != nil {
		return fmt.Errorf("pod %s: encode record: %w", p.ID, err)
	}
	return tx.Bucket(bucketPods).Put([]byte(p.ID), raw)
}

func validJSON(field string, raw json.RawMessage) error {
	if len(raw) > 0 && !json.Valid(raw) {
		return fmt.Errorf("pod %s: not valid JSON: %w", field, errdefs.ErrInvalidArgument)
	}
	return nil
}

// CreatePod stores a new pod in state pending (p.State must be empty or
// pending) with Generation 1, and appends its first state event. A pod with
// the same ID or Name gives ErrAlreadyExists. It returns the stored record.
func (s *Store) CreatePod(ctx context.Context, p Pod) (*Pod, error) {
	if err := errdefs.ValidateID("pod", p.ID); err != nil {
		return nil, err
	}
	if err := errdefs.ValidateID("pod name", p.Name); err != nil {
		return nil, err
	}
	if p.State != "" && p.State != lifecycle.Pending {
		return nil, fmt.Errorf("pod %s: new pods start pending, not %s: %w", p.ID, p.State, errdefs.ErrInvalidArgument)
	}
	if err := validJSON("spec", p.Spec); err != nil {
		return nil, err
	}
	if err := validJSON("status", p.Status); err != nil {
		return nil, err
	}
	var out *Pod
	err := s.update(ctx, func(t *txn) error {
		if t.Bucket(bucketPods).Get([]byte(p.ID)) != nil {
			return fmt.Errorf("pod %s: %w", p.ID, errdefs.ErrAlreadyExists)
		}
		names := t.Bucket(bucketPodNames)
		if owner := names.Get([]byte(p.Name)); owner != nil {
			return fmt.Errorf("pod name %s (pod %s): %w", p.Name, owner, errdefs.ErrAlreadyExists)
		}
		n := p.clone()
		n.State = lifecycle.Pending
		n.Generation = 1
		n.CreatedAt, n.UpdatedAt, n.StateChangedAt = t.now, t.now, t.now
		if err := putPod(t.Tx, n); err != nil {
			return err
		}
		if err := names.Put([]byte(n.Name), []byte(n.ID)); err != nil {
			return err
		}
		out = n
		return t.appendEvent(&Event{PodID: n.ID, Type: EventState, To: lifecycle.Pending, Reason: n.Reason})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetPod returns the pod with this ID, or ErrNotFound.
func (s *Store) GetPod(ctx context.Context, id string) (*Pod, error) {
	var p *Pod
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		p, err = getPod(tx, id)
		return err
	})
	return p, err
}

// GetPodByName returns the pod with this name, or ErrNotFound.
func (s *Store) GetPodByName(ctx context.Context, name string) (*Pod, error) {
	var p *Pod
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketPodNames).Get([]byte(name))
		if id == nil {
			return fmt.Errorf("pod named %s: %w", name, errdefs.ErrNotFound)
		}
		var err error
		p, err = getPod(tx, string(id))
		return err
	})
	return p, err
}

// ListPods returns every pod, oldest first (ties broken by ID).
func (s *Store) ListPods(ctx context.Context) ([]Pod, error) {
	var pods []Pod
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPods).ForEach(func(k, v []byte) error {
			p, err := decodePod(v)
			if err != nil {
				return fmt.Errorf("pod %s: %w", k, err)
			}
			pods = append(pods, *p)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(pods, func(a, b Pod) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return pods, nil
}

// UpdatePod reads the pod, lets fn change it, and writes it back, all in
// one transaction; Generation and UpdatedAt are bumped. fn runs inside the
// write transaction (keep it short, no I/O) and may return an error to
// abort without changes; that error is returned as is. fn may change Spec,
// Status and Reason; changing ID, Name, State or CreatedAt is refused
// (states move only through Transition, so every move is validated and
// logged).
func (s *Store) UpdatePod(ctx context.Context, id string, fn func(*Pod) error) (*Pod, error) {
	var out *Pod
	err := s.update(ctx, func(t *txn) error {
		p, err := getPod(t.Tx, id)
		if err != nil {
			return err
		}
		n := p.clone()
		if err := fn(n); err != nil {
			return err
		}
		if err := checkImmutable(p, n); err != nil {
			return err
		}
		if err := commitPod(t, p, n); err != nil {
			return err
		}
		out = n
		return nil
	})
	return out, err
}

func checkImmutable(old, n *Pod) error {
	switch {
	case n.ID != old.ID:
		return fmt.Errorf("pod %s: id is immutable: %w", old.ID, errdefs.ErrInvalidArgument)
	case n.Name != old.Name:
		return fmt.Errorf("pod %s: name is immutable: %w", old.ID, errdefs.ErrInvalidArgument)
	case n.State != old.State:
		return fmt.Errorf("pod %s: state changes go through Transition: %w", old.ID, errdefs.ErrInvalidArgument)
	case !n.CreatedAt.Equal(old.CreatedAt):
		return fmt.Errorf("pod %s: createdAt is immutable: %w", old.ID, errdefs.ErrInvalidArgument)
	}
	if err := validJSON("spec", n.Spec); err != nil {
		return err
	}
	return validJSON("status", n.Status)
}

func commitPod(t *txn, old, n *Pod) error {
	n.Generation = old.Generation + 1
	n.UpdatedAt = t.now
	n.StateChangedAt = old.StateChangedAt
	if n.State != old.State {
		n.StateChangedAt = t.now
	}
	return putPod(t.Tx, n)
}

// Transition moves the pod to state to, validated by lifecycle, and appends
// the state event in the same transaction: if the move is not allowed
// nothing changes (a *lifecycle.TransitionError wrapping ErrConflict).
// Entering failed requires a reason. The pod's Reason becomes reason.
func (s *Store) Transition(ctx context.Context, id string, to lifecycle.State, reason string) (*Pod, error) {
	return s.TransitionWith(ctx, id, to, reason, nil)
}

// TransitionWith is Transition plus fn, which may change Spec, Status and
// Reason in the same transaction (provisioning -> running together with
// the sandbox's IP, say). fn sees the pod before the move and may abort it
// by returning an error. A nil fn is allowed.
func (s *Store) TransitionWith(ctx context.Context, id string, to lifecycle.State, reason string, fn func(*Pod) error) (*Pod, error) {
	if to == lifecycle.Failed && reason == "" {
		return nil, fmt.Errorf("pod %s: entering failed needs a reason: %w", id, errdefs.ErrInvalidArgument)
	}
	var out *Pod
	err := s.update(ctx, func(t *txn) error {
		p, err := getPod(t.Tx, id)
		if err != nil {
			return err
		}
		if err := lifecycle.CheckTransition(p.State, to); err != nil {
			return fmt.Errorf("pod %s: %w", id, err)
		}
		out, err = t.transition(p, to, reason, fn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *txn) transition(p *Pod, to lifecycle.State, reason string, fn func(*Pod) error) (*Pod, error) {
	n := p.clone()
	n.Reason = reason
	if fn != nil {
		if err := fn(n); err != nil {
			return nil, err
		}
		if err := checkImmutable(p, n); err != nil {
			return nil, err
		}
	}
	n.State = to
	if err := commitPod(t, p, n); err != nil {
		return nil, err
	}
	return n, t.appendEvent(&Event{PodID: p.ID, Type: EventState, From: p.State, To: to, Reason: n.Reason})
}

// ApplyOp decides what op means for the pod's current state and, if the
// answer is Proceed, enters the transitional state and appends its event,
// all in one transaction, so two concurrent operations cannot both
// proceed. A conflict is a *lifecycle.ConflictError. The returned pod is
// the record after the decision (unchanged for NoOp and Await).
func (s *Store) ApplyOp(ctx context.Context, id string, op lifecycle.Op, reason string) (lifecycle.Decision, *Pod, error) {
	var (
		d   lifecycle.Decision
		out *Pod
	)
	err := s.update(ctx, func(t *txn) error {
		p, err := getPod(t.Tx, id)
		if err != nil {
			return err
		}
		d, err = lifecycle.Decide(op, id, p.State)
		if err != nil {
			return err
		}
		if d.Action != lifecycle.Proceed {
			out = p
			return nil
		}
		out, err = t.transition(p, d.Enter, reason, nil)
		return err
	})
	if err != nil {
		return lifecycle.Decision{}, nil, err
	}
	return d, out, nil
}

// DeletePod removes the pod's record, its name, and its port (AllocatePort
// and port set) and subnet allocations in one transaction, and appends a "deleted" event. Deleting
// a pod that does not exist succeeds (teardown is idempotent). The store
// does not insist on state terminated: the manager decides when a record
// may go.
func (s *Store) DeletePod(ctx context.Context, id string) error {
	return s.update(ctx, func(t *txn) error {
		p, err := getPod(t.Tx, id)
		if errdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := t.Bucket(bucketPods).Delete([]byte(id)); err != nil {
			return err
		}
		names := t.Bucket(bucketPodNames)
		if bytes.Equal(names.Get([]byte(p.Name)), []byte(id)) {
			if err := names.Delete([]byte(p.Name)); err != nil {
				return err
			}
		}
		if err := releaseAllPorts(t.Tx, id); err != nil {
			return err
		}
		if _, err := releaseSubnet(t.Tx, id); err != nil {
			return err
		}
		return t.appendEvent(&Event{PodID: id, Type: EventDeleted, From: p.State})
	})
}
