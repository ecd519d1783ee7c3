package pods

import (
	"context"
	"sync"
	"time"
)

// sessions tracks the exec and terminal sessions open in each pod: a
// hibernate closes them first (a checkpoint would freeze them half way),
// and an open one keeps a pod from being idle.
type sessions struct {
	mu   sync.Mutex
	open map[string]map[*session]struct{}
	// last is when a session of the pod last began or ended.
	last map[string]time.Time
}

type session struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newSessions() *sessions {
	return &sessions{open: map[string]map[*session]struct{}{}, last: map[string]time.Time{}}
}

// begin registers a session of pod id; its context ends when the session
// is closed from the node's side. end must be called when it is over.
func (s *sessions) begin(ctx context.Context, id string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	se := &session{cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	if s.open[id] == nil {
		s.open[id] = map[*session]struct{}{}
	}
	s.open[id][se] = struct{}{}
	s.last[id] = time.Now()
	s.mu.Unlock()
	return ctx, func() {
		cancel()
		s.mu.Lock()
		delete(s.open[id], se)
		if len(s.open[id]) == 0 {
			delete(s.open, id)
		}
		s.last[id] = time.Now()
		s.mu.Unlock()
		close(se.done)
	}
}

// closeAll ends every open session of pod id and waits, until ctx ends,
// for them to finish; it returns how many there were.
func (s *sessions) closeAll(ctx context.Context, id string) int {
	s.mu.Lock()
	var all []*session
	for se := range s.open[id] {
		all = append(all, se)
	}
	s.mu.Unlock()
	for _, se := range all {
		se.cancel()
	}
	for _, se := range all {
		select {
		case <-se.done:
		case <-ctx.Done():
			return len(all)
		}
	}
	return len(all)
}

// activity reports whether pod id has a session open and when one last
// began or ended (zero if never).
func (s *sessions) activity(id string) (open bool, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open[id]) > 0, s.last[id]
}

// forget drops what is known of a deleted pod.
func (s *sessions) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.last, id)
}
