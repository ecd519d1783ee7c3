package store

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

func TestConcurrentApplyOpOnlyOneProceeds(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	mustTransition(t, s, "p1", lifecycle.Provisioning, lifecycle.Running)
	var proceeded, awaited atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			d, _, err := s.ApplyOp(ctx, "p1", lifecycle.OpStop, "")
			switch {
			case err != nil:
				t.Errorf("ApplyOp: %v", err)
			case d.Action == lifecycle.Proceed:
				proceeded.Add(1)
			case d.Action == lifecycle.Await:
				awaited.Add(1)
			}
		})
	}
	wg.Wait()
	if proceeded.Load() != 1 || awaited.Load() != 15 {
		t.Fatalf("proceeded %d, awaited %d; want 1 and 15", proceeded.Load(), awaited.Load())
	}
}

func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	const n = 64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := s.UpdatePod(ctx, "p1", func(p *Pod) error {
				var st struct{ Count int }
				if p.Status != nil {
					if err := json.Unmarshal(p.Status, &st); err != nil {
						return err
					}
				}
				st.Count++
				p.Status, _ = json.Marshal(st)
				return nil
			})
			if err != nil {
				t.Errorf("UpdatePod: %v", err)
			}
		})
	}
	wg.Wait()
	p, _ := s.GetPod(ctx, "p1")
	var st struct{ Count int }
	json.Unmarshal(p.Status, &st)
	if st.Count != n || p.Generation != n+1 {
		t.Fatalf("count %d generation %d, want %d and %d", st.Count, p.Generation, n, n+1)
	}
}
