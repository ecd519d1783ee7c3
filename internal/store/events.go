package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// Event is one entry of the node's event log. Seq is assigned by the store:
// it starts at 1, grows by one per event, survives restarts and is never
// reused, so a follower resumes with "events after Seq".
type Event struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	PodID   string          `json:"podId,omitempty"` // empty for node-wide events
	Type    string          `json:"type"`            // EventState, EventDeleted, or the caller's ("oom", "service", "port")
	From    lifecycle.State `json:"from,omitempty"`
	To      lifecycle.State `json:"to,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Message string          `json:"message,omitempty"`
}

// ErrEventsPruned says events a reader asked for were already pruned from
// the bounded log (a follower fell more than the event limit behind). It
// wraps errdefs.ErrNotFound; the reader should resync from the current
// state and follow from Seq 0.
var ErrEventsPruned = fmt.Errorf("events pruned from the log: %w", errdefs.ErrNotFound)

// appendEvent assigns the next Seq, stores ev and prunes the oldest events
// beyond the limit, in the caller's transaction.
func (t *txn) appendEvent(ev *Event) error {
	b := t.Bucket(bucketEvents)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	ev.Seq = seq
	if ev.Time.IsZero() {
		ev.Time = t.now
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if err := b.Put(u64(seq), raw); err != nil {
		return err
	}
	t.appended = true
	if seq <= t.s.eventLimit {
		return nil
	}
	// Seqs are contiguous (a rolled-back transaction rolls its
	// NextSequence back too), so "keep the newest N" is "keep seq >
	// seq-N". Usually this deletes one key. Re-seek after each delete:
	// a bbolt cursor may skip keys when deleting while iterating.
	cutoff := seq - t.s.eventLimit
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= cutoff; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// AppendEvent adds an event of the caller's type (an OOM, a service
// restart, a port change) to the log and returns it with Seq and Time set.
// State events are written only by Transition, so Type "state" is refused.
func (s *Store) AppendEvent(ctx context.Context, ev Event) (Event, error) {
	switch ev.Type {
	case "":
		return Event{}, fmt.Errorf("event type: required: %w", errdefs.ErrInvalidArgument)
	case EventState, EventDeleted:
		return Event{}, fmt.Errorf("event type %q: written by the store itself: %w", ev.Type, errdefs.ErrInvalidArgument)
	}
	ev.Seq = 0
	err := s.update(ctx, func(t *txn) error { return t.appendEvent(&ev) })
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// Events returns up to limit events with Seq > sinceSeq, oldest first, for
// one pod if podID is set. limit <= 0 means all that are kept. Events older
// than the limit are gone; compare the first Seq with sinceSeq+1 to notice.
func (s *Store) Events(ctx context.Context, sinceSeq uint64, podID string, limit int) ([]Event, error) {
	var out []Event
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, _, err = readEvents(tx, sinceSeq, podID, limit)
		return err
	})
	return out, err
}

// LastSeq returns the Seq of the newest event (0 if there is none yet).
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	var seq uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		seq = tx.Bucket(bucketEvents).Sequence()
		return nil
	})
	return seq, err
}

// readEvents reads events after since matching podID, at most limit
// matches (limit <= 0: no limit). It returns the last Seq it looked at,
// matching or not, so a follower's cursor moves past other pods' events.
func readEvents(tx *bolt.Tx, since uint64, podID string, limit int) ([]Event, uint64, error) {
	var out []Event
	last := since
	c := tx.Bucket(bucketEvents).Cursor()
	for k, v := c.Seek(u64(since + 1)); k != nil; k, v = c.Next() {
		var ev Event
		if err := fileutil.UnmarshalStrict(v, &ev); err != nil {
			return nil, last, fmt.Errorf("event %d: decode: %w", binary.BigEndian.Uint64(k), err)
		}
		last = ev.Seq
		if podID != "" && ev.PodID != podID {
			continue
		}
		out = append(out, ev)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	return out, last, nil
}

// firstSeq is the Seq of the oldest kept event, or Sequence()+1 if the log
// is empty (the next event's Seq).
func firstSeq(tx *bolt.Tx) uint64 {
	b := tx.Bucket(bucketEvents)
	if k, _ := b.Cursor().First(); k != nil {
		return binary.BigEndian.Uint64(k)
	}
	return b.Sequence() + 1
}
