package store

import (
	"context"
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// watchBatch is how many events a follower reads per read transaction.
// Reads are batched and the transaction closed before delivering, so a
// slow consumer never holds a bbolt read transaction open (which would
// stall a writer that needs to grow the file).
const watchBatch = 256

// Subscription is a live follow of the event log, from Watch.
//
// Delivery reads from the database by Seq, not from an in-memory queue:
// writers only poke a one-slot wake channel after each commit, so a slow
// consumer never blocks them and never misses an event. The one exception
// is a consumer so slow that the events it has not read yet were pruned
// (more than the event limit behind): then C is closed and Err returns
// ErrEventsPruned.
type Subscription struct {
	// C delivers events in Seq order, each exactly once. It is closed when
	// the watch ends; Err then says why.
	C <-chan Event

	c      chan Event
	wake   chan struct{}
	cancel context.CancelFunc

	mu  sync.Mutex
	err error
}

// Err returns why C was closed: the watch context's error, ErrClosed,
// ErrEventsPruned, or a read error. It is nil while C is open.
func (w *Subscription) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close ends the watch; C is closed shortly after. It is idempotent.
func (w *Subscription) Close() { w.cancel() }

// Watch follows the event log: it delivers every event with Seq > sinceSeq
// that is still kept (sinceSeq 0: all kept history), then every new event
// as its transaction commits, with no gap or duplicate between the two. If
// podID is set only that pod's events are delivered. If sinceSeq is older
// than the oldest kept event Watch fails with ErrEventsPruned. The watch
// ends when ctx is done, Close is called, or the Store is closed.
func (s *Store) Watch(ctx context.Context, sinceSeq uint64, podID string) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Subscription{
		c:      make(chan Event, 64),
		wake:   make(chan struct{}, 1),
		cancel: cancel,
	}
	w.C = w.c

	// Register before reading where to start: a commit that lands after
	// the registration wakes us, and one before it is in the first read.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return nil, ErrClosed
	}
	s.subs[w] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	cursor := sinceSeq
	err := s.db.View(func(tx *bolt.Tx) error {
		first := firstSeq(tx)
		switch {
		case sinceSeq == 0:
			cursor = first - 1
		case sinceSeq+1 < first:
			return ErrEventsPruned
		}
		return nil
	})
	if err != nil {
		s.unsubscribe(w)
		s.wg.Done()
		cancel()
		return nil, s.dbErr(err)
	}
	go s.follow(ctx, w, cursor, podID)
	return w, nil
}

func (s *Store) follow(ctx context.Context, w *Subscription, cursor uint64, podID string) {
	var err error
	defer func() {
		s.unsubscribe(w)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		close(w.c)
		w.cancel()
		s.wg.Done()
	}()
	for {
		var (
			batch []Event
			last  uint64
		)
		err = s.db.View(func(tx *bolt.Tx) error {
			// Every event after cursor must still be there; seqs are
			// contiguous, so a first kept Seq beyond cursor+1 is a gap.
			if firstSeq(tx) > cursor+1 {
				return ErrEventsPruned
			}
			var err error
			batch, last, err = readEvents(tx, cursor, podID, watchBatch)
			return err
		})
		if err != nil {
			err = s.dbErr(err)
			if errors.Is(err, ErrEventsPruned) {
				s.log.Warn("event watcher fell behind the log and was closed", "after", cursor, "pod", podID)
			}
			return
		}
		for _, ev := range batch {
			select {
			case w.c <- ev:
			case <-ctx.Done():
				err = ctx.Err()
				return
			case <-s.done:
				err = ErrClosed
				return
			}
		}
		cursor = last
		if len(batch) == watchBatch {
			continue // more may be waiting; read again before sleeping
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			err = ctx.Err()
			return
		case <-s.done:
			err = ErrClosed
			return
		}
	}
}

func (s *Store) unsubscribe(w *Subscription) {
	s.mu.Lock()
	delete(s.subs, w)
	s.mu.Unlock()
}

// notify wakes every follower after a commit that appended events. It never
// blocks: a follower already awake will read the new events anyway.
func (s *Store) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.subs {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}
