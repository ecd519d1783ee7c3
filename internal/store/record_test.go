package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

func TestRecordRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	for _, p := range []Pod{
		{ID: "p1", Name: "web", State: lifecycle.Pending, Generation: 1, CreatedAt: now, UpdatedAt: now, StateChangedAt: now},
		{
			ID: "p2", Name: "api", State: lifecycle.Failed, Reason: "oom: killed", Generation: 42,
			Spec: benchSpec, Status: benchStatus,
			CreatedAt: now, UpdatedAt: now.Add(time.Hour), StateChangedAt: now.Add(time.Minute),
		},
	} {
		raw, err := encodePod(&p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodePod(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, p) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", *got, p)
		}
		// Every truncation is an error, never a panic or a silent partial pod.
		for n := range len(raw) {
			if _, err := decodePod(raw[:n]); !errors.Is(err, errCorrupt) {
				t.Fatalf("decode of %d/%d bytes = %v, want corrupt", n, len(raw), err)
			}
		}
	}
}

func FuzzDecodePod(f *testing.F) {
	raw, _ := encodePod(&Pod{ID: "p1", Name: "web", Spec: json.RawMessage(`{"a":1}`)})
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		decodePod(b) // must not panic
	})
}
