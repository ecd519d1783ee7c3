package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// A pod record on disk is an envelope, not one JSON document:
//
//	byte    recordV1
//	uvarint len(header) | header: JSON of every field but Spec and Status
//	uvarint len(spec)   | spec bytes
//	uvarint len(status) | status bytes
//
// Spec and Status are validated JSON on the way in; storing them beside the
// small header means reading a pod copies them instead of scanning them
// twice through encoding/json (RawMessage decoding validates, then skips).
// docs/state.md has the figures.
const recordV1 byte = 1

type podHeader struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	State          lifecycle.State `json:"state"`
	Reason         string          `json:"reason,omitempty"`
	Generation     int64           `json:"generation"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
	StateChangedAt time.Time       `json:"stateChangedAt"`
}

func encodePod(p *Pod) ([]byte, error) {
	h, err := json.Marshal(podHeader{
		ID: p.ID, Name: p.Name, State: p.State, Reason: p.Reason, Generation: p.Generation,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, StateChangedAt: p.StateChangedAt,
	})
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(h)+len(p.Spec)+len(p.Status))
	buf = append(buf, recordV1)
	for _, part := range [][]byte{h, p.Spec, p.Status} {
		buf = binary.AppendUvarint(buf, uint64(len(part)))
		buf = append(buf, part...)
	}
	return buf, nil
}

var errCorrupt = errors.New("corrupt record")

// decodePod copies everything it keeps: raw points into bbolt's mmap and
// is only valid inside the transaction.
func decodePod(raw []byte) (*Pod, error) {
	if len(raw) == 0 || raw[0] != recordV1 {
		return nil, fmt.Errorf("%w: unknown record format", errCorrupt)
	}
	rest := raw[1:]
	var parts [3][]byte
	for i := range parts {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return nil, fmt.Errorf("%w: truncated", errCorrupt)
		}
		parts[i], rest = rest[w:w+int(n)], rest[w+int(n):]
	}
	var h podHeader
	if err := fileutil.UnmarshalStrict(parts[0], &h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", errCorrupt, err)
	}
	p := &Pod{
		ID: h.ID, Name: h.Name, State: h.State, Reason: h.Reason, Generation: h.Generation,
		CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt, StateChangedAt: h.StateChangedAt,
	}
	if len(parts[1]) > 0 {
		p.Spec = json.RawMessage(append([]byte(nil), parts[1]...))
	}
	if len(parts[2]) > 0 {
		p.Status = json.RawMessage(append([]byte(nil), parts[2]...))
	}
	return p, nil
}
