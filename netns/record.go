package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// A pod's record (pods/<id>.json) is what Teardown reads to undo a
// network: it is written before any side effect and replaced atomically.

// writeRecord writes a as podID's record.
func (m *manager) writeRecord(podID string, a *Attachment) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("pod %s network record: %w", podID, err)
	}
	return fileutil.WriteAtomic(m.recordPath(podID), append(b, '\n'), 0o600)
}

// load reads podID's record, strictly: a field this version does not know
// is a record it cannot tear down correctly.
func (m *manager) load(podID string) (*Attachment, error) {
	b, err := os.ReadFile(m.recordPath(podID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pod %s network: %w", podID, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var a Attachment
	if err := fileutil.UnmarshalStrict(b, &a); err != nil {
		return nil, fmt.Errorf("pod %s network record: %w", podID, err)
	}
	return &a, nil
}
